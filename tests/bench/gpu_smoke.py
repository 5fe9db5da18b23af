"""CUDA smoke check of the next-token samplers (run by hand on a GPU machine; not part of the suite).

Every catalog sampler on the embedded model in bf16 and fp16 at batch 1 and 6 (ragged SJD), finite
results of the right shape; greedy ragged batch SJD equal to the samples one by one in fp32; the
non-finite check raising on an overflowing fp16 model. Prints one line per check.

    python tests/bench/gpu_smoke.py
"""

from __future__ import annotations

import time

import torch

from arsample.errors import SamplingError
from arsample.models.embedded import embedded_paths
from arsample.models.llamagen import LlamaGenCondition, load_gpt
from arsample.samplers import SAMPLER_NAMES, SamplerSettings, SJDSettings, named_sampler, sample_sjd

CLASSES = [0, 1, 2, 5, 7, 9]


def main() -> None:
    device = torch.device("cuda")
    print(torch.__version__, torch.cuda.get_device_name(0))
    base = SamplerSettings(cfg_scale=2.0, top_k=16)
    for dtype in ("bf16", "fp16"):
        gpt = load_gpt(embedded_paths("tiny")["gpt"], dtype=dtype, device=device)
        for name in SAMPLER_NAMES:
            sampler = named_sampler(name, base, "embedded", SJDSettings(window=16))
            for classes in ([3], CLASSES):
                t0 = time.perf_counter()
                r = sampler.run(gpt, LlamaGenCondition(labels=torch.tensor(classes)), seed=0)
                ok = r.tokens.shape == (len(classes), 256) and bool(torch.isfinite(r.entropy).all())
                print(f"{dtype} {name:>18} batch {len(classes)}: {r.stats.forward_passes:4d} passes "
                      f"{time.perf_counter() - t0:6.2f} s {'ok' if ok else 'FAILED'}")
    gpt = load_gpt(embedded_paths("tiny")["gpt"], device=device)
    greedy = SamplerSettings(cfg_scale=2.0, temperature=0.0)
    batch = sample_sjd(gpt, LlamaGenCondition(labels=torch.tensor(CLASSES)), greedy, SJDSettings(window=16))
    alone = [sample_sjd(gpt, LlamaGenCondition(labels=torch.tensor([c])), greedy, SJDSettings(window=16))
             for c in CLASSES]
    same = torch.equal(batch.tokens, torch.cat([a.tokens for a in alone]))
    print(f"fp32 greedy ragged batch equals one by one: {same}; passes {batch.stats.forward_passes} vs "
          f"{[a.stats.forward_passes for a in alone]}")
    hot = load_gpt(embedded_paths("tiny")["gpt"], device=device)
    with torch.no_grad():
        hot.output.weight.mul_(30000)
    try:
        named_sampler("plain", SamplerSettings(cfg_scale=4.0)).run(hot.half(), LlamaGenCondition(labels=torch.tensor([1])))
        print("fp16 overflow: NOT caught")
    except SamplingError as exc:
        print("fp16 overflow caught:", str(exc)[:80])


if __name__ == "__main__":
    main()
