"""Sampling flags shared by the commands: the embedded-model defaults (demo, bench) and the speculative Jacobi
flags (generate, demo, bench), turned into catalog samplers here only."""

from __future__ import annotations

from ..samplers import (ACCEPTANCE_RULES, DRAFT_INITS, NamedSampler, SamplerSettings, SJDSettings, SpeculativeJacobi,
                        named_sampler)

# The embedded model's defaults: guidance 2 (LlamaGen's FID setting for its B/L models) and top-k 16
# (the LlamaGen demo keeps 2000 of 16,384 tokens, 12%; 16 of 128 is the same share).
TINY_DEFAULTS = dict(cfg=2.0, top_k=16, top_p=1.0, temperature=1.0)


def add_sampling_flags(p) -> None:
    p.add_argument("--model", default="tiny", help="embedded model name")
    p.add_argument("--cfg", type=float, default=TINY_DEFAULTS["cfg"], help="classifier-free guidance (any value ≤ 1 is off)")
    p.add_argument("--top-k", type=int, default=TINY_DEFAULTS["top_k"], help="0 = off")
    p.add_argument("--top-p", type=float, default=TINY_DEFAULTS["top_p"], help="1.0 = off")
    p.add_argument("--temperature", type=float, default=TINY_DEFAULTS["temperature"])
    p.add_argument("--preset", default="embedded",
                   help="entropy-temperature preset of the entropy samplers ('embedded': the LlamaGen preset moved "
                        "to this model's entropy scale); a sampler named like 'entropy@llamagen' uses its own")
    p.add_argument("--device", default="cpu", help="cpu or cuda")


def base_settings(args) -> SamplerSettings:
    return SamplerSettings(cfg_scale=args.cfg, top_k=args.top_k, top_p=args.top_p, temperature=args.temperature)


def add_sjd_flags(p) -> None:
    """Flags of the speculative Jacobi samplers (shared by generate, demo, bench)."""
    p.add_argument("--acceptance", choices=ACCEPTANCE_RULES, default=None,
                   help="SJD acceptance rule for --sampler sjd: exact (lossless), entropy, entropy-scale, constant (lossy)")
    p.add_argument("--coupled", action="store_true", help="SJD: coupled (Gumbel-shared) drafts (MC-SJD)")
    p.add_argument("--window", type=int, default=16, help="SJD: tokens per forward pass (1 = plain AR)")
    p.add_argument("--init", choices=DRAFT_INITS, default="repeat", help="SJD: how new draft positions start")


def sjd_settings(args) -> SJDSettings:
    return SJDSettings(window=args.window, init=args.init)


def sjd_method(args) -> SpeculativeJacobi:
    """The speculative Jacobi method of the flags: --window, --init, --acceptance (default exact), --coupled."""
    return SpeculativeJacobi(SJDSettings(window=args.window, init=args.init, acceptance=args.acceptance or "exact",
                                         coupled=args.coupled))


def build_samplers(names: str, base: SamplerSettings, args) -> list[NamedSampler]:
    """Catalog samplers by comma-separated name; a bare 'sjd' honours --acceptance and --coupled.

    ``name@preset`` (e.g. ``entropy@llamagen``) runs a sampler with another entropy preset, so one
    table can compare presets.
    """
    out = []
    for label in [n.strip() for n in names.split(",") if n.strip()]:
        name, _, own_preset = label.partition("@")
        sampler = named_sampler(name, base, own_preset or args.preset, sjd_settings(args))
        if own_preset:
            sampler = NamedSampler(label, sampler.settings, sampler.method)
        if name == "sjd" and (args.acceptance or args.coupled):
            method = sjd_method(args)
            sampler = NamedSampler(method.label(False), sampler.settings, method)
        out.append(sampler)
    return out
