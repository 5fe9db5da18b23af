"""`arsample generate`: sample class-conditional images with the plain or entropy sampler."""

from __future__ import annotations

import argparse

import numpy as np
import torch

from .. import imaging
from ..errors import ARSampleError
from ..models.embedded import embedded_paths
from ..models.llamagen import LlamaGenCondition, check_pair, load_gpt, load_vq
from ..samplers import PRESETS, SamplerSettings, SJDSettings, preset, sample_ar, sample_sjd
from .common import output_path, parse_int_list, pick_device
from .embedded_args import add_sjd_flags

SAMPLERS = ("plain", "entropy", "sjd")


def register(sub) -> None:
    p = sub.add_parser("generate", help="sample images from a LlamaGen GPT + VQ tokenizer",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--gpt", help="GPT checkpoint (.pt or .safetensors)")
    p.add_argument("--vq", help="VQ tokenizer checkpoint (.pt or .safetensors)")
    p.add_argument("--model", help="an embedded model by name instead of --gpt/--vq (e.g. 'tiny')")
    p.add_argument("--classes", required=True, help="class ids, one image each, in order (repeat for more)")
    p.add_argument("--sampler", choices=SAMPLERS, default="plain")
    p.add_argument("--cfg", type=float, default=4.0, help="classifier-free guidance scale (1 = off)")
    p.add_argument("--cfg-interval", type=int, default=-1, help="guided decode steps (-1 = all)")
    p.add_argument("--top-k", type=int, default=0, help="0 = off")
    p.add_argument("--top-p", type=float, default=1.0, help="1.0 = off")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="temperature (entropy sampler: multiplies the entropy map); 0 = greedy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="PNG grid of the batch, in order")
    p.add_argument("--save-tokens", help="write the tokens as an int64 .npy array [batch, tokens]")
    p.add_argument("--entropy-map", help="PNG grid of per-token entropy heatmaps")
    p.add_argument("--preset", default="llamagen", choices=sorted(PRESETS), help="entropy-temperature preset")
    p.add_argument("--t0", type=float, help="entropy map T0 (overrides the preset)")
    p.add_argument("--alpha", type=float, help="entropy map alpha (overrides the preset)")
    p.add_argument("--theta", type=float, help="entropy map theta (overrides the preset)")
    p.add_argument("--clamp-min", type=float, help="lower clamp of the entropy temperature")
    p.add_argument("--clamp-max", type=float, help="upper clamp of the entropy temperature")
    p.add_argument("--entropy-source", choices=("filtered", "raw"), help="entropy after or before top-k/top-p")
    add_sjd_flags(p)
    p.add_argument("--entropy-temperature", action="store_true",
                   help="with --sampler sjd: sample from the entropy-temperature distribution (lossless with exact)")
    p.add_argument("--image-size", type=int, help="pixels per side (default: from the checkpoint name/metadata)")
    p.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32", help="GPT weight dtype")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.set_defaults(run=run)


def settings_from_args(args) -> SamplerSettings:
    """SamplerSettings for the parsed sampling flags."""
    entropy = None
    if args.sampler == "entropy" or args.entropy_temperature:
        entropy = preset(args.preset, t0=args.t0, alpha=args.alpha, theta=args.theta, clamp_min=args.clamp_min,
                         clamp_max=args.clamp_max, source=args.entropy_source)
    return SamplerSettings(cfg_scale=args.cfg, cfg_interval=args.cfg_interval, top_k=args.top_k, top_p=args.top_p,
                           temperature=args.temperature, entropy=entropy)


def run(args) -> int:
    out = output_path(args.out, "--out")
    tokens_path = output_path(args.save_tokens, "--save-tokens") if args.save_tokens else None
    map_path = output_path(args.entropy_map, "--entropy-map") if args.entropy_map else None
    classes = parse_int_list(args.classes, "--classes")
    settings = settings_from_args(args)
    device = pick_device(args.device)
    if args.model:
        if args.gpt or args.vq:
            raise ARSampleError("Give either --model or --gpt/--vq, not both.")
        paths = embedded_paths(args.model)
        args.gpt, args.vq = str(paths["gpt"]), str(paths["vq"])
    elif not (args.gpt and args.vq):
        raise ARSampleError("Give --gpt and --vq checkpoints, or --model tiny for the embedded model.")

    vq = load_vq(args.vq, device=device)
    override = {"downsample": vq.downsample}
    if args.image_size:
        override["image_size"] = args.image_size
    gpt = load_gpt(args.gpt, override=override, dtype=args.dtype, device=device)
    check_pair(gpt, vq)
    if gpt.config.model_type != "c2i":
        raise ARSampleError("This GPT is text-to-image; --classes needs a class-to-image model (c2i_*.pt).")

    cond = LlamaGenCondition(labels=torch.tensor(classes, dtype=torch.long))
    settings.validate(gpt.vocab_size, len(classes))
    if args.sampler == "sjd":
        sjd = SJDSettings(window=args.window, init=args.init, acceptance=args.acceptance or "exact",
                          coupled=args.coupled)
        result = sample_sjd(gpt, cond, settings, sjd, seed=args.seed)
    else:
        result = sample_ar(gpt, cond, settings, seed=args.seed)
    images = imaging.to_uint8(vq.decode_codes(result.tokens))

    imaging.save_png(imaging.make_grid(images), out)
    if tokens_path:
        imaging.save_npy(result.tokens.cpu().numpy().astype(np.int64), tokens_path)
    if map_path:
        maps = imaging.entropy_heatmaps(result.entropy, images.shape[1:3])
        imaging.save_png(imaging.make_grid(maps), map_path)
    print(f"{args.sampler}: {result.stats.summary()}")
    print(f"wrote {out}" + (f", {tokens_path}" if tokens_path else "") + (f", {map_path}" if map_path else ""))
    return 0
