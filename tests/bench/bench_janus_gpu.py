"""GPU benchmark of Janus-Pro-1B's generation path: AR vs SJD vs coupled SJD (never run by CI).

    python tests/bench/bench_janus_gpu.py [--batch 1] [--seeds 0,1] [--samplers plain,sjd,...] [--dtype bf16]
    python tests/bench/bench_janus_gpu.py --tiny --device cpu     # checks the script in seconds, no GPU

Random weights with exactly the shapes of Janus-Pro-1B's generation path (the release's ``config.json`` from
``tests/fixtures/golden/janus_official_keys.json``, read with ``janus_config``; every parameter shape is checked
against the release's keys there): the 24-layer Llama (hidden 2048, 16 heads, intermediate 5632, text
vocabulary 102400), ``gen_embed`` 16384 × 8, ``gen_aligner`` (mlp_gelu, depth 2) and ``gen_head``; 1.49 G
parameters, built on the meta device and allocated once on ``--device`` in ``--dtype`` (about 3 GB in bf16;
nothing is written to disk; the VQ decoder is not built, so only token generation is timed). 384 px = 576 image
tokens (24 × 24), a random prompt of 40 ids (BOS first, the image-start id last, the unconditional row padded
in between as the reference builds it; one distinct prompt per image of a batch), CFG 5, temperature 1, no
top-k/top-p (the reference's settings), SJD window 16.

Per sampler (catalog names, ``samplers.named_sampler``): one untimed warm-up call (64 tokens), then the peak
memory counter is reset and one call of ``--batch`` images per seed is timed (CUDA-synchronised, prompt prefill
included). Prints a Markdown table with the GPU's name and the torch version in its header: seconds per image,
forward passes per call (prefill included), image tokens per pass (per image), the acceptance rate of the
drafts, ``torch.cuda.max_memory_allocated`` over the timed calls (weights included; the weights alone are in
the header) and the speed-up in seconds over "plain".

Random weights are not a trained model, so the pass counts and speed-ups measure the machinery (what a 16-token
pass costs against a one-token pass on this GPU, SJD's per-pass overhead, the memory of the window), not the
acceptance a trained Janus-Pro would get. ``--init small`` (default; N(0, 0.02) weights as in ``bench_gpu.py``)
gives next-token distributions that barely depend on the context, so nearly every draft is accepted: the best
case of the machinery. ``--init fan-in`` (N(0, 1/fan_in), as ``bench_janus.py``) makes them depend on it, and
far fewer drafts pass. Measured with this script's models on the CPU (bf16, batch 1, seed 0, the first 32 of
the 576 tokens): small init, exact SJD and coupled acceptance 0.93, 5 passes instead of 32; fan-in init,
acceptance 0.23, 25 passes; mean entropy of the guided distribution about 4.7-4.8 nats with either (of
log 16384 = 9.70; CFG 5 sharpens it). The run time (a few minutes per init at batch 1) is a guess: the script
has not run on a GPU yet.

``--tiny`` swaps in a tiny Janus (hidden 64, 2 layers, codebook 1024, 8 × 8 grid) and one seed, so the whole
script runs in seconds on a CPU; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch
from arsample.models.janus import (
    JanusCondition,
    JanusConfig,
    JanusGenerator,
    janus_config,
    unconditional_ids,
)
from arsample.models.janus.keys import model_key, wanted
from arsample.samplers import SamplerSettings, SJDSettings, named_sampler

OFFICIAL = Path(__file__).resolve().parents[1] / "fixtures" / "golden" / "janus_official_keys.json"
SAMPLERS = "plain,sjd,sjd-entropy,coupled,coupled-entropy"
CFG, TEMPERATURE, WINDOW, PROMPT_LEN = 5.0, 1.0, 16, 40
BOS, PAD, IMAGE_START = 0, 1, 2  # special ids of the random prompt (any ids do with random weights)
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def official_1b() -> tuple[JanusConfig, dict[str, tuple[int, ...]]]:
    """Janus-Pro-1B's generation config (384 px) and the shapes of its generation keys, in our names."""
    data = json.loads(OFFICIAL.read_text())
    shapes = {k: tuple(v[0]) for k, v in data["janus_pro_1b"].items()}
    return janus_config(data["configs"]["janus_pro_1b"]), {ours: shapes[k] for k, ours in
                                                           wanted(shapes, model_key).items()}


def tiny() -> JanusConfig:
    return JanusConfig(hidden_size=64, intermediate_size=172, num_layers=2, num_heads=4, num_kv_heads=4, head_dim=16,
                       rms_norm_eps=1e-6, rope_theta=10000.0, max_positions=PROMPT_LEN + 64, text_vocab_size=512,
                       image_vocab_size=1024, gen_embed_dim=8, aligner_depth=2, head_hidden=64, grid_size=8,
                       name="Janus-tiny")


def random_generator(config: JanusConfig, device: torch.device, dtype: torch.dtype, init: str = "small",
                     shapes: dict[str, tuple[int, ...]] | None = None) -> JanusGenerator:
    """A JanusGenerator with random weights, allocated once on ``device`` in ``dtype``. ``init`` "small": norm gains
    1, every other tensor N(0, 0.02²) (as ``bench_gpu.py``'s GPT-XL); "fan-in": norm gains 1 + 0.2·N(0, 1), every
    other tensor N(0, 1)/√fan_in (fan_in = elements of one output row; the whole tensor for a bias; as
    ``bench_janus.py``). ``shapes``: the official parameter shapes the model must have."""
    with torch.device("meta"):
        model = JanusGenerator(config)
    if shapes is not None:
        ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        if ours != shapes:
            raise SystemExit(f"the model's keys or shapes differ from the release's: "
                             f"{sorted(set(ours.items()) ^ set(shapes.items()))[:5]}")
    model = model.to(dtype).to_empty(device=device)
    g = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and "norm" in name and name.endswith("weight"):
                p.fill_(1.0) if init == "small" else p.normal_(1.0, 0.2, generator=g)
            else:
                fan_in = p[0].numel() if p.dim() > 1 else p.numel()
                p.normal_(0.0, 0.02 if init == "small" else fan_in ** -0.5, generator=g)
    return model.eval().requires_grad_(False)


def prompts(batch: int, text_vocab: int) -> JanusCondition:
    """``batch`` fixed random prompts of PROMPT_LEN ids and their unconditional rows."""
    g = torch.Generator().manual_seed(2)
    rows = [(BOS, *torch.randint(3, text_vocab, (PROMPT_LEN - 2,), generator=g).tolist(), IMAGE_START)
            for _ in range(batch)]
    return JanusCondition(tuple(rows), tuple(unconditional_ids(r, PAD) for r in rows), ("bench",) * batch)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="bf16")
    parser.add_argument("--batch", type=int, default=1, help="images per call (distinct prompts)")
    parser.add_argument("--seeds", default=None, help="one timed call per seed (default 0,1; --tiny: 0)")
    parser.add_argument("--samplers", default=SAMPLERS, help="catalog names, comma-separated")
    parser.add_argument("--init", choices=("small", "fan-in"), default="small",
                        help="random weights: N(0, 0.02) (drafts mostly pass) or N(0, 1/fan_in) (they mostly fail)")
    parser.add_argument("--tiny", action="store_true", help="tiny model and one seed: checks the script on a CPU")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.batch < 1:
        parser.error("--batch must be ≥ 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    seeds = [int(s) for s in (args.seeds or ("0" if args.tiny else "0,1")).split(",")]
    names = args.samplers.split(",")
    config, shapes = (tiny(), None) if args.tiny else official_1b()
    if not args.tiny:
        config = replace(config, name="Janus-Pro-1B (random weights)")

    cuda = device.type == "cuda"
    start = time.perf_counter()
    model = random_generator(config, device, dtype, args.init, shapes)
    sync(device)
    built = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters())
    weights = sum(p.numel() * p.element_size() for p in model.parameters()) / 2 ** 30
    cond = prompts(args.batch, config.text_vocab_size)
    base = SamplerSettings(cfg_scale=CFG, temperature=TEMPERATURE)
    n = model.num_image_tokens

    where = f"{torch.cuda.get_device_name(device)}" if cuda else f"CPU ({torch.get_num_threads()} threads)"
    print(f"GPU: {where}, torch {torch.__version__}" if cuda else f"device: {where}, torch {torch.__version__}")
    c = config
    print(f"{c.name}: Llama hidden {c.hidden_size} ({c.num_heads}×{c.head_dim}, {c.num_kv_heads} kv heads), "
          f"{c.num_layers} layers, intermediate {c.intermediate_size}, text vocab {c.text_vocab_size}; codebook "
          f"{c.image_vocab_size}×{c.gen_embed_dim}; {params / 1e6:,.1f} M parameters in {args.dtype} "
          f"({args.init} random init, weights {weights:.2f} GiB, built in {built:.1f} s); {c.image_size} px = {n} "
          f"tokens; prompt {PROMPT_LEN} ids; CFG {CFG}, temperature {TEMPERATURE}, window {WINDOW}; "
          f"batch {args.batch}, seeds {','.join(map(str, seeds))}\n")
    print("| sampler | s / image | forward passes | tokens / pass | acceptance | mean entropy | peak memory | "
          "vs plain (s) |")
    print("|---|---|---|---|---|---|---|---|")

    named_sampler("plain", base).run(model, cond, seed=0, num_tokens=min(8, n))  # kernels, allocator, RoPE table
    plain_s = None
    for name in names:
        sampler = named_sampler(name, base, sjd=SJDSettings(window=WINDOW))
        sampler.run(model, cond, seed=12345, num_tokens=min(64, n))  # warm-up
        sync(device)
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        secs, passes, acc, ent = [], [], [], []
        for seed in seeds:
            sync(device)
            t0 = time.perf_counter()
            r = sampler.run(model, cond, seed=seed)
            sync(device)
            secs.append((time.perf_counter() - t0) / args.batch)
            passes.append(r.stats.forward_passes)
            acc.append(r.stats.extra.get("acceptance rate", 0.0))
            ent.append(float(r.entropy.float().mean()))
            if tuple(r.tokens.shape) != (args.batch, n) or not bool(torch.isfinite(r.entropy).all()):
                raise SystemExit(f"{name}: bad result (tokens {tuple(r.tokens.shape)}, finite entropy "
                                 f"{bool(torch.isfinite(r.entropy).all())})")
        s, p = statistics.mean(secs), statistics.mean(passes)
        plain_s = plain_s if plain_s is not None or name != "plain" else s
        spread = f" ± {statistics.pstdev(secs):.2f}" if len(secs) > 1 else ""
        peak = f"{torch.cuda.max_memory_allocated(device) / 2 ** 30:.2f} GiB" if cuda else "-"
        speed = f"{plain_s / s:.2f}x" if plain_s else "-"
        print(f"| {name} | {s:.2f}{spread} | {p:.1f} | {n / p:.2f} | {statistics.mean(acc):.3f} | "
              f"{statistics.mean(ent):.2f} / {math.log(c.image_vocab_size):.2f} | {peak} | {speed} |", flush=True)


if __name__ == "__main__":
    main()
