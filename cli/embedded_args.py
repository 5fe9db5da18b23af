"""Flags shared by the commands that run on the embedded model (demo, bench)."""

from __future__ import annotations

from ..samplers import SamplerSettings

# Defaults for the embedded tiny model (chosen on its validation runs; see README).
TINY_DEFAULTS = dict(cfg=3.0, top_k=0, top_p=1.0, temperature=1.0)


def add_sampling_flags(p) -> None:
    p.add_argument("--model", default="tiny", help="embedded model name")
    p.add_argument("--cfg", type=float, default=TINY_DEFAULTS["cfg"], help="classifier-free guidance (1 = off)")
    p.add_argument("--top-k", type=int, default=TINY_DEFAULTS["top_k"], help="0 = off")
    p.add_argument("--top-p", type=float, default=TINY_DEFAULTS["top_p"], help="1.0 = off")
    p.add_argument("--temperature", type=float, default=TINY_DEFAULTS["temperature"])
    p.add_argument("--preset", default="llamagen", help="entropy-temperature preset of the entropy sampler")
    p.add_argument("--device", default="cpu", help="cpu or cuda")


def base_settings(args) -> SamplerSettings:
    return SamplerSettings(cfg_scale=args.cfg, top_k=args.top_k, top_p=args.top_p, temperature=args.temperature)
