"""`arsample demo`: every sampler side by side on the embedded model, with entropy heatmaps."""

from __future__ import annotations

from .. import imaging
from ..models.registry import MODEL, TOKENIZER, Loaded, embedded_files, load_model, load_tokenizer
from ..outputs import OutputPlan
from .common import embedded_inputs, entropy_heatmaps, parse_int_list, pick_device
from .embedded_args import (EMBEDDED_DEFAULTS, add_sampling_flags, add_sjd_flags, apply_model_defaults, base_settings,
                            build_samplers)


def register(sub) -> None:
    p = sub.add_parser("demo", help="compare the samplers on the embedded model (no download)")
    p.add_argument("--out", default="arsample_demo.png", help="PNG comparison sheet")
    p.add_argument("--classes", default="0,1,2,5,7,9", help="class ids of the embedded model (0-9)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samplers", default=None,
                   help="comma-separated; default: every sampler of the model's decoding order (" +
                        "; ".join(f"{m}: {', '.join(d['samplers'])}" for m, d in EMBEDDED_DEFAULTS.items()) + ")")
    add_sampling_flags(p)
    add_sjd_flags(p)
    p.set_defaults(run=run)


def comparison_sheet(model: Loaded, tokenizer: Loaded, classes: list[int], samplers, seed: int, scale: int = 2):
    """Sample ``classes`` with each sampler (same seed); returns (sheet RGB array, [(name, result)])."""
    family, info = model.family, model.info
    names = [info.class_names[c] if info.class_names else str(c) for c in classes]
    cond = family.class_condition(info, classes, names)
    target = family.sampling_model(model.module, tokenizer.module)
    results = []
    for sampler in samplers:
        result = sampler.run(target, cond.value, seed=seed)
        images = imaging.to_uint8(family.decode(tokenizer.module, result.tokens, result.layout))
        results.append((sampler.name, images, result))
    # One square map per image: the token grid, or for next-scale models the finest scale's map (all scales
    # side by side are what `generate --entropy-map` and the Entropy Map node draw).
    multi_scale = len(results[0][2].layout.scales) > 1
    finest = [r.layout.maps(r.entropy)[-1] for _, _, r in results] if multi_scale else [r.entropy for _, _, r in results]
    vmax = max(float(e.max()) for e in finest)
    rows = []
    for name, images, result in results:
        maps = entropy_heatmaps(result, images, vmax=vmax, finest_only=True)
        cells = []
        for img, heat in zip(imaging.upscale(images, scale), imaging.upscale(maps, scale)):
            cells += [img, heat]
        s = result.stats
        rows.append((f"{name}\n{s.forward_passes} passes\n{s.seconds:.1f} s\nH {s.mean_entropy:.2f}", cells))
    map_title = f"H {results[0][2].layout.scales[-1][0]}x{results[0][2].layout.scales[-1][1]}" if multi_scale \
        else "entropy"
    titles = [t for n in names for t in (n, map_title)]
    cell = images.shape[1] * scale
    return imaging.labelled_sheet(rows, titles, cell=cell), [(n, r) for n, _, r in results]


def run(args) -> int:
    out = args.out
    apply_model_defaults(args)
    plan = OutputPlan(outputs={"--out": out}, inputs=embedded_inputs(args.model)).check()
    classes = parse_int_list(args.classes, "--classes")
    family, files = embedded_files(args.model)
    device = pick_device(args.device)
    model = load_model(files[MODEL], device=device, name=f"embedded:{args.model}")
    tokenizer = load_tokenizer(files[TOKENIZER], device=device)
    samplers = build_samplers(args.samplers, base_settings(args), args, order=family.order)
    sheet, results = comparison_sheet(model, tokenizer, classes, samplers, args.seed)
    for name, result in results:
        print(f"{name:>18}: {result.stats.summary()}")
    with plan.writing():
        imaging.save_png(sheet, out)
    print(f"wrote {out} (rows: samplers; per class: image, then its per-token entropy; same seed {args.seed})")
    return 0
