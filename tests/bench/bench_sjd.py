"""Benchmark: forward passes and seconds per image of AR and the speculative Jacobi samplers.

    python tests/bench/bench_sjd.py [--model gpt-b|tiny] [--seeds 0,1] [--device cpu|cuda] [--dtype fp32|bf16]

gpt-b: random-weight GPT-B c2i 256 (official layout), CFG 4.0, 256 tokens. Forward-pass
counts do not depend on the machine; seconds do. Each image is sampled on its own
(batch 1), the setting SJD's numbers are usually quoted for. For quality figures
(class accuracy, Fréchet distance) on the embedded model use `arsample bench`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_ar import CLASSES, random_gpt_b  # noqa: E402

from arsample.models.llamagen import LlamaGenCondition  # noqa: E402
from arsample.samplers import SamplerSettings, SJDSettings, named_sampler  # noqa: E402

SAMPLERS = ["plain", "sjd", "sjd-entropy", "sjd-entropy-scale", "coupled", "coupled-entropy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("gpt-b", "tiny"), default="gpt-b")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--images", type=int, default=2, help="images per seed")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--window", type=int, default=16)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    device = torch.device(args.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    if args.model == "gpt-b":
        gpt = random_gpt_b().to(device, dtype)
        base = SamplerSettings(cfg_scale=4.0)
        classes = CLASSES
    else:
        from arsample.models.embedded import load_embedded

        gpt, _ = load_embedded("tiny", device=device, dtype=args.dtype)
        base = SamplerSettings(cfg_scale=3.0)
        classes = list(range(10))
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"{args.model} on {device} ({args.dtype}), {gpt.num_image_tokens} tokens, window {args.window}, "
          f"{args.images} images x {len(seeds)} seeds per sampler, batch 1\n")
    print("| sampler | forward passes / image | tokens / forward | acceptance rate | s / image | vs AR passes |")
    print("|---|---|---|---|---|---|")
    ar_passes = None
    for name in SAMPLERS:
        sampler = named_sampler(name, base, sjd=SJDSettings(window=args.window))
        per_seed_passes, per_seed_secs, acc = [], [], []
        for seed in seeds:
            passes, secs = [], []
            for i in range(args.images):
                cond = LlamaGenCondition(labels=torch.tensor([classes[(seed * args.images + i) % len(classes)]]))
                r = sampler.run(gpt, cond, seed=1000 * seed + i)
                passes.append(r.stats.forward_passes)
                secs.append(r.stats.seconds)
                acc.append(r.stats.extra.get("acceptance rate", 0.0))
            per_seed_passes.append(statistics.mean(passes))
            per_seed_secs.append(statistics.mean(secs))
        mean_p = statistics.mean(per_seed_passes)
        sd_p = statistics.pstdev(per_seed_passes)
        ar_passes = ar_passes or mean_p
        print(f"| {name} | {mean_p:.1f} ± {sd_p:.1f} | {gpt.num_image_tokens / mean_p:.2f} | "
              f"{statistics.mean(acc):.3f} | {statistics.mean(per_seed_secs):.2f} ± {statistics.pstdev(per_seed_secs):.2f} "
              f"| {ar_passes / mean_p:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
