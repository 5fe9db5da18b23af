"""Ragged batch SJD: forward passes of a batch vs the same classes sampled one image at a time.

Not run by the test suite. On the embedded model with the demo's six classes (CFG 2, top-k 16,
window 16), for each SJD sampler and seed it prints the passes the batch of 6 needed, the mean
and the maximum of the six single-image runs, and batch / mean single (target ≤ 1.25; a batch
that advanced at its slowest sample every pass, as before ragged batches, needed ~150 vs ~80).

    python tests/bench/bench_batch_sjd.py --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import statistics

import torch

from arsample.models.embedded import embedded_paths
from arsample.models.llamagen import LlamaGenCondition, load_gpt
from arsample.samplers import SamplerSettings, SJDSettings, named_sampler

DEMO_CLASSES = [0, 1, 2, 5, 7, 9]
SAMPLERS = ["sjd", "sjd-entropy", "coupled", "coupled-entropy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gpt = load_gpt(embedded_paths("tiny")["gpt"])
    base = SamplerSettings(cfg_scale=2.0, top_k=16)
    seeds = [int(s) for s in args.seeds.split(",")]
    print("| sampler | batch of 6: passes | one at a time: mean passes | one at a time: max | batch / mean |")
    print("|---|---|---|---|---|")
    for name in SAMPLERS:
        sampler = named_sampler(name, base, "embedded", SJDSettings(window=16, init="repeat"))
        batch, mean, top = [], [], []
        for seed in seeds:
            batch.append(sampler.run(gpt, LlamaGenCondition(labels=torch.tensor(DEMO_CLASSES)), seed=seed)
                         .stats.forward_passes)
            single = [sampler.run(gpt, LlamaGenCondition(labels=torch.tensor([c])), seed=seed * 100 + i)
                      .stats.forward_passes for i, c in enumerate(DEMO_CLASSES)]
            mean.append(statistics.mean(single))
            top.append(max(single))
        ratio = statistics.mean(b / m for b, m in zip(batch, mean))
        print(f"| {name} | {statistics.mean(batch):.1f} | {statistics.mean(mean):.1f} | {statistics.mean(top):.1f} "
              f"| {ratio:.2f}x |")


if __name__ == "__main__":
    main()
