"""Benchmark: our AR loop against the official LlamaGen generate(), side by side.

Random GPT-B c2i 256 weights (the official layout), fp32, CFG 4.0, all 256 tokens,
batch 1 and 8. Prints seconds per image for both loops and their ratio, the
entropy sampler's overhead over plain sampling in our loop, an estimate of how
close each decode step is to the memory-bandwidth limit, and peak memory.

    python tests/bench/bench_ar.py [--official PATH_TO_LLAMAGEN_CHECKOUT] [--repeats 2]

The official code is imported only when --official is given (a checkout of
FoundationVision/LlamaGen; it is never part of this repository).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time

import torch

from arsample.models.llamagen import LlamaGenCondition, LlamaGenGPT, gpt_config
from arsample.samplers import SamplerSettings, preset, sample_ar, token_distribution

CLASSES = [207, 360, 387, 974, 88, 979, 417, 279]


def random_gpt_b(seed: int = 0) -> LlamaGenGPT:
    """GPT-B c2i 256 with random weights of a realistic scale."""
    torch.manual_seed(seed)
    model = LlamaGenGPT(gpt_config("GPT-B", grid_size=16))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02)
    return model.eval().requires_grad_(False)


def load_official(path: str, state: dict):
    sys.path.insert(0, path)
    from autoregressive.models.generate import generate  # noqa: E402
    from autoregressive.models.gpt import GPT_models  # noqa: E402

    model = GPT_models["GPT-B"](vocab_size=16384, block_size=256, num_classes=1000, cls_token_num=1,
                                model_type="c2i")
    model.load_state_dict(state, strict=True)
    return model.eval(), generate


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def copy_bandwidth_gbs() -> float:
    """Measured memory copy bandwidth (read + write bytes / s) with a 512 MB buffer."""
    src = torch.ones(128 * 1024 * 1024)
    dst = torch.empty_like(src)
    dst.copy_(src)
    secs = timed(lambda: dst.copy_(src), 5)
    return 2 * src.numel() * 4 / secs / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", help="path to a FoundationVision/LlamaGen checkout")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batches", default="1,8")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    ours = random_gpt_b()
    weight_bytes = sum(p.numel() * p.element_size() for p in ours.parameters())
    official = generate = None
    if args.official:
        official, generate = load_official(args.official, ours.state_dict())
    plain = SamplerSettings(cfg_scale=4.0)
    entropy = SamplerSettings(cfg_scale=4.0, entropy=preset("llamagen"))
    bandwidth = copy_bandwidth_gbs()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, GPT-B c2i 256 random weights "
          f"({weight_bytes / 1e6:.0f} MB fp32), CFG 4.0, 256 tokens; copy bandwidth {bandwidth:.1f} GB/s")
    print()
    header = "| batch | ours plain s/img | ours entropy s/img | entropy overhead | official s/img | ours/official |"
    print(header)
    print("|" + "---|" * 6)
    rows = time_loops(ours, official, generate, plain, entropy, args)
    print()
    distribution_costs(rows, plain, entropy)
    print()
    bandwidth_use(ours, rows, weight_bytes, bandwidth, official)


def time_loops(ours, official, generate, plain, entropy, args) -> list[tuple[int, float, float]]:
    """Seconds of our loop (plain, entropy) and the official one per batch; prints a table row each."""
    rows = []
    for batch in [int(b) for b in args.batches.split(",")]:
        labels = torch.tensor((CLASSES * 4)[:batch])
        cond = LlamaGenCondition(labels=labels)
        t_plain = timed(lambda: sample_ar(ours, cond, plain, seed=0), args.repeats)
        t_entropy = timed(lambda: sample_ar(ours, cond, entropy, seed=0), args.repeats)
        t_official = float("nan")
        if official is not None:
            t_official = timed(lambda: generate(official, labels, 256, cfg_scale=4.0, temperature=1.0, top_k=0,
                                                top_p=1.0, sample_logits=True), args.repeats)
        ratio = t_plain / t_official if official is not None else float("nan")
        print(f"| {batch} | {t_plain / batch:.3f} | {t_entropy / batch:.3f} | {100 * (t_entropy / t_plain - 1):+.1f}% "
              f"| {t_official / batch:.3f} | {ratio:.2f} |")
        rows.append((batch, t_plain, t_official))
    return rows


def distribution_costs(rows, plain, entropy) -> None:
    print("Per-token cost of turning logits into a distribution (isolated, median of 200 calls, CFG batch):")
    for batch, t_plain, _ in rows:
        logits = torch.randn(2 * batch, 16384) * 3
        base_t = torch.ones(batch, 1)
        cost = {}
        for name, settings in (("plain", plain), ("entropy", entropy)):
            samples = []
            for _ in range(200):
                start = time.perf_counter()
                token_distribution(logits.chunk(2), settings, base_t, True)
                samples.append(time.perf_counter() - start)
            cost[name] = statistics.median(samples)
        step = t_plain / 256
        extra = cost["entropy"] - cost["plain"]
        print(f"- batch {batch}: plain {cost['plain'] * 1e6:.0f} µs, entropy {cost['entropy'] * 1e6:.0f} µs per token; "
              f"the difference is {100 * extra / step:.2f}% of a {step * 1e3:.1f} ms decode step")


def bandwidth_use(ours, rows, weight_bytes: int, bandwidth: float, official) -> None:
    c = ours.config
    print("Bandwidth use per decode step (bytes of weights + KV cache read, over the step time):")
    for batch, t_plain, t_official in rows:
        step = t_plain / 256
        mean_len = 1 + 128  # average cached positions over the run
        kv_bytes = 2 * c.n_layer * 2 * batch * mean_len * c.dim * 4
        achieved = (weight_bytes + kv_bytes) / step / 1e9
        line = f"- batch {batch}: ours {step * 1e3:.1f} ms/step → {achieved:.1f} GB/s read"
        if t_official == t_official:
            line += f", official {t_official / 256 * 1e3:.1f} ms/step → " \
                    f"{(weight_bytes + kv_bytes) / (t_official / 256) / 1e9:.1f} GB/s"
        print(line + f" (copy bandwidth {bandwidth:.1f} GB/s, i.e. {bandwidth / 2:.1f} GB/s of reads)")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kv_peak = 2 * c.n_layer * 2 * max(r[0] for r in rows) * (1 + 256) * c.dim * 4
    print(f"\nPeak memory: process max RSS {peak_mb:.0f} MB (both models loaded: {2 if official else 1} x "
          f"{weight_bytes / 1e6:.0f} MB weights); our KV cache at batch {max(r[0] for r in rows)} with CFG: "
          f"{kv_peak / 1e6:.1f} MB")
    if torch.cuda.is_available():
        print(f"CUDA peak allocated: {torch.cuda.max_memory_allocated() / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
