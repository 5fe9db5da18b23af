"""Benchmark: the memory a 1024 px Meissonic image takes, phase by phase, on random weights of the official size.

Meissonic's authors state about 9.5 GB of VRAM for 1024 px in fp16. This measures what our code takes:
the transformer (official config, 1.0 B parameters) in fp16/bf16 with one guided step (rows [negative;
positive], 64×64 tokens) plus the sampler's per-step work, and the VQ model (146 M parameters, fp32 as its
config asks) decoding one 64×64 grid to 1024×1024. Each phase runs in its own process, so its peak is its
own. On CUDA the figure is ``torch.cuda.max_memory_allocated``; on the CPU it is the growth of the peak
resident set (``ru_maxrss``) over the process's size after imports, an upper bound of what the tensors took.
The text encoder (CLIP-H, 354 M parameters, 0.7 GB in fp16) encodes once before sampling and is not counted.

    python tests/bench/bench_meissonic_memory.py [--device cpu|cuda] [--dtype bf16|fp16] [--steps 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

GIB = 1024 ** 3


def _peak_bytes(device: str) -> int:
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _random_(module, seed: int = 0) -> None:
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_((torch.randn(p.shape, generator=g) * 0.02).to(p.dtype))


def phase_transformer(device: str, dtype: str, steps: int) -> dict:
    import torch

    from arsample.models.dtypes import parse_dtype
    from arsample.models.meissonic import MeissonicCondition, MeissonicConfig, MeissonicTransformer
    from arsample.models.meissonic.generator import MeissonicGenerator
    from arsample.samplers import SamplerSettings, preset
    from arsample.samplers.masked import MaskedOptions, sample_masked

    base = _peak_bytes(device)
    torch.set_grad_enabled(False)
    with torch.device("meta"):
        model = MeissonicTransformer(MeissonicConfig())
    model = model.to_empty(device=device).to(parse_dtype(dtype))
    _random_(model)
    params = sum(p.numel() for p in model.parameters())
    weights = _peak_bytes(device)
    states, pooled = torch.randn(1, 77, 1024), torch.randn(1, 1024)
    cond = MeissonicCondition(states, pooled, torch.randn(1, 77, 1024), torch.randn(1, 1024))
    started = time.perf_counter()
    settings = SamplerSettings(cfg_scale=9.0, entropy=preset("meissonic"))
    # `steps` of a 48-step run: the first ones re-predict the whole grid, like every other step
    sample_masked(MeissonicGenerator(model, (64, 64)), cond, settings, options=MaskedOptions(steps=max(steps, 1)),
                  seed=0)
    return {"phase": "transformer", "parameters": params, "weights_gib": (weights - base) / GIB,
            "peak_gib": (_peak_bytes(device) - base) / GIB, "seconds": time.perf_counter() - started}


def phase_vq(device: str) -> dict:
    import torch

    from arsample.models.meissonic import MeissonicVQConfig, MeissonicVQModel

    base = _peak_bytes(device)
    torch.set_grad_enabled(False)
    with torch.device("meta"):
        vq = MeissonicVQModel(MeissonicVQConfig())
    vq = vq.to_empty(device=device)
    _random_(vq, 1)
    params = sum(p.numel() for p in vq.parameters())
    weights = _peak_bytes(device)
    started = time.perf_counter()
    image = vq.decode(torch.randint(0, 8192, (1, 64, 64), device=device), clamp=True)
    assert image.shape == (1, 3, 1024, 1024)
    return {"phase": "vq decode", "parameters": params, "weights_gib": (weights - base) / GIB,
            "peak_gib": (_peak_bytes(device) - base) / GIB, "seconds": time.perf_counter() - started}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="bf16", choices=("bf16", "fp16", "fp32"), help="transformer weights")
    p.add_argument("--steps", type=int, default=1, help="sampling steps to run (memory does not grow with them)")
    p.add_argument("--phase", choices=("transformer", "vq"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.phase:  # one phase, in this process
        row = phase_transformer(args.device, args.dtype, args.steps) if args.phase == "transformer" \
            else phase_vq(args.device)
        print(json.dumps(row))
        return 0
    rows = []
    for phase in ("transformer", "vq"):
        out = subprocess.run([sys.executable, __file__, "--phase", phase, "--device", args.device, "--dtype",
                              args.dtype, "--steps", str(args.steps)], check=True, capture_output=True, text=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    what = "torch.cuda.max_memory_allocated" if args.device == "cuda" else "peak RSS growth"
    print(f"Meissonic 1024 px, batch 1 with guidance, transformer {args.dtype}, VQ fp32, device {args.device} ({what})")
    print(f"{'phase':<12} {'parameters':>12} {'weights GiB':>12} {'peak GiB':>9} {'seconds':>8}")
    for r in rows:
        print(f"{r['phase']:<12} {r['parameters'] / 1e6:>10.1f} M {r['weights_gib']:>12.2f} {r['peak_gib']:>9.2f} "
              f"{r['seconds']:>8.1f}")
    resident = rows[0]["weights_gib"] + rows[1]["weights_gib"]
    print(f"both models resident + the larger working set: "
          f"{resident + max(r['peak_gib'] - r['weights_gib'] for r in rows):.2f} GiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
