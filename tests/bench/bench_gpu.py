"""GPU benchmark (never run by CI; about 3-5 minutes on one recent GPU).

    python tests/bench/bench_gpu.py [--images 2]

Random-weight GPT-XL c2i at 384 px (576 tokens) in bf16 with CFG 4.0, and the
embedded tiny model: AR vs SJD-exact vs SJD-entropy vs coupled SJD. Prints seconds
per image, forward passes, tokens per second and peak GPU memory, plus the GPU name.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from arsample.models.embedded import load_embedded
from arsample.models.llamagen import LlamaGenCondition, LlamaGenGPT, gpt_config
from arsample.samplers import SamplerSettings, SJDSettings, named_sampler

SAMPLERS = ["plain", "sjd", "sjd-entropy", "coupled"]


def random_gpt_xl_384(device) -> LlamaGenGPT:
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaGenGPT(gpt_config("GPT-XL", grid_size=24))
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(1.0) if name.endswith("norm.weight") else p.normal_(0.0, 0.02)
    return model.to(torch.bfloat16).eval().requires_grad_(False)


def run(label: str, gpt, base: SamplerSettings, classes: list[int], images: int) -> None:
    print(f"\n{label}: {gpt.num_image_tokens} tokens, batch 1\n")
    print("| sampler | s / image | forward passes | tokens / s | peak memory |")
    print("|---|---|---|---|---|")
    for name in SAMPLERS:
        sampler = named_sampler(name, base, sjd=SJDSettings(window=16))
        cond = LlamaGenCondition(labels=torch.tensor([classes[0]]))
        sampler.run(gpt, cond, seed=0, num_tokens=min(64, gpt.num_image_tokens))  # warm-up
        torch.cuda.reset_peak_memory_stats()
        secs, passes = [], []
        for i in range(images):
            cond = LlamaGenCondition(labels=torch.tensor([classes[i % len(classes)]]))
            torch.cuda.synchronize()
            start = time.perf_counter()
            r = sampler.run(gpt, cond, seed=i)
            torch.cuda.synchronize()
            secs.append(time.perf_counter() - start)
            passes.append(r.stats.forward_passes)
        s = statistics.mean(secs)
        print(f"| {name} | {s:.2f} | {statistics.mean(passes):.1f} | {gpt.num_image_tokens / s:.0f} | "
              f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=2)
    args = parser.parse_args()
    assert torch.cuda.is_available(), "this benchmark needs a CUDA GPU"
    torch.set_grad_enabled(False)
    print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    run("GPT-XL c2i 384, random weights, bf16, CFG 4.0", random_gpt_xl_384("cuda"), SamplerSettings(cfg_scale=4.0),
        [207, 360, 387, 974], args.images)
    gpt, _ = load_embedded("tiny", device="cuda", dtype="bf16")
    run("embedded tiny model, bf16, CFG 3.0", gpt, SamplerSettings(cfg_scale=3.0), list(range(10)), args.images)


if __name__ == "__main__":
    main()
