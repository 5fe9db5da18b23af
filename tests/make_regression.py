"""Generator of the sampler regression data in ``tests/fixtures/regression/tokens.safetensors``.

RUN ONCE, DO NOT RERUN. The fixture was produced once, on commit 437c3bc (the code before the
sampler refactor), from a pristine ``git worktree`` of that commit, with::

    git -C /work/main worktree add --detach /tmp/regress_head 437c3bc
    mkdir -p /tmp/regress_pkg && ln -sfn /tmp/regress_head /tmp/regress_pkg/arsample
    PYTHONPATH=/tmp/regress_pkg:tests python tests/make_regression.py \\
        --out tests/fixtures/regression/tokens.safetensors

It records what that code produced, so that later code can be checked against it
(``tests/test_regression.py``). If that test fails, the code changed its output: find out why.
Do NOT rerun this script to "fix" a failing test — that would throw away the reference. Only
regenerate (from the old commit, as above, never from the current tree) if the recorded cases
themselves must change, and say so in the commit message.

What is recorded (int64 tokens, one tensor per key ``{model}/{sampler}/b{batch}/seed{seed}``):

- every catalog sampler of ``arsample.samplers.catalog`` (plain, entropy, sjd, sjd-entropy,
  sjd-entropy-scale, coupled, coupled-entropy), built with
  ``named_sampler(name, settings, preset, SJDSettings(window=16, init="repeat"))``;
- on three models:
  ``embedded`` — the shipped embedded tiny model (``load_embedded("tiny")``), CFG 2, top-k 16,
  entropy preset ``embedded``, labels [3] (batch 1) and [0, 5, 9] (batch 3);
  ``random-c2i`` — ``LlamaGenGPT(tiny_gpt_config(vocab_size=64, grid_size=4, num_classes=10))``
  randomised with ``tinymodels.randomize_`` (seed in the metadata), CFG 4, top-k 0, preset
  ``llamagen``, labels [1] and [1, 4, 7];
  ``random-t2i`` — ``tiny_gpt_config(model_type="t2i", vocab_size=64, grid_size=4)`` randomised
  likewise, CFG 4, top-k 0, preset ``llamagen``; caption features from a seeded ``torch.randn``
  (3, 12, 16) with left padding (real tokens at the end, ``caption_mask`` 1 on them, padded
  features zeroed): 12, 3 and 8 real tokens in rows 0, 1, 2; batch 3 is all three rows, batch 1
  is row 1 alone (the padded one);
- seeds 0, 1, 2; batch 1 and batch 3;
- plus, for ``plain`` and ``entropy`` at batch 1, the per-token float32 model entropy
  (``SamplingResult.entropy``) under ``{model}/{sampler}/b1/seed{seed}/entropy``.

The random models' weights are not stored: they are rebuilt from the seeds and configs in the
metadata (``randomize_`` is deterministic). The metadata key ``spec`` holds the whole case
description as JSON (models, settings, conditions, samplers, seeds, SJD settings); ``models``
each model's full GPTConfig and a weight checksum (to tell a changed model from a changed
sampler); ``source`` says which commit produced the data. The test rebuilds every case from that spec with the
helpers below (``build_model``, ``build_condition``, ``build_sampler``).

Runs on one CPU thread (``torch.set_num_threads(1)``), about 30 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

SOURCE_COMMIT = "437c3bc"
SAMPLERS = ("plain", "entropy", "sjd", "sjd-entropy", "sjd-entropy-scale", "coupled", "coupled-entropy")
AR_SAMPLERS = ("plain", "entropy")  # the non-SJD samplers; the rest use speculative Jacobi decoding
SEEDS = (0, 1, 2)
BATCHES = (1, 3)
ENTROPY_SAMPLERS = ("plain", "entropy")  # per-token entropy recorded for these, batch 1 only
SJD = {"window": 16, "init": "repeat"}

SPEC = {
    "samplers": list(SAMPLERS),
    "seeds": list(SEEDS),
    "batches": list(BATCHES),
    "sjd": SJD,
    "entropy_samplers": list(ENTROPY_SAMPLERS),
    "models": {
        "embedded": {
            "kind": "embedded", "name": "tiny",
            "settings": {"cfg_scale": 2.0, "top_k": 16}, "preset": "embedded",
            "conditions": {"1": {"labels": [3]}, "3": {"labels": [0, 5, 9]}},
        },
        "random-c2i": {
            "kind": "random", "config": {"vocab_size": 64, "grid_size": 4, "num_classes": 10}, "weight_seed": 1,
            "settings": {"cfg_scale": 4.0, "top_k": 0}, "preset": "llamagen",
            "conditions": {"1": {"labels": [1]}, "3": {"labels": [1, 4, 7]}},
        },
        "random-t2i": {
            "kind": "random", "config": {"model_type": "t2i", "vocab_size": 64, "grid_size": 4}, "weight_seed": 2,
            "settings": {"cfg_scale": 4.0, "top_k": 0}, "preset": "llamagen",
            # rows of a seeded randn (3, cls_token_num, caption_dim); real_tokens per row, left-padded
            "caption": {"seed": 11, "real_tokens": [12, 3, 8]},
            "conditions": {"1": {"caption_rows": [1]}, "3": {"caption_rows": [0, 1, 2]}},
        },
    },
}


def key(model: str, sampler: str, batch: int, seed: int) -> str:
    return f"{model}/{sampler}/b{batch}/seed{seed}"


def build_model(mspec: dict):
    """The GPT of one model spec: the embedded model, or a tiny GPT randomised with its seed."""
    if mspec["kind"] == "embedded":
        from arsample.models.embedded import load_embedded

        gpt, _vq = load_embedded(mspec["name"])
        return gpt
    from arsample.models.llamagen import LlamaGenGPT
    from tinymodels import randomize_, tiny_gpt_config

    return randomize_(LlamaGenGPT(tiny_gpt_config(**mspec["config"])), seed=mspec["weight_seed"])


def build_condition(mspec: dict, model, batch: int):
    """The LlamaGenCondition of one model spec at batch size ``batch``."""
    from arsample.models.llamagen import LlamaGenCondition

    cspec = mspec["conditions"][str(batch)]
    if "labels" in cspec:
        return LlamaGenCondition(labels=torch.tensor(cspec["labels"], dtype=torch.long))
    cap = mspec["caption"]
    c = model.config
    real = cap["real_tokens"]
    gen = torch.Generator().manual_seed(cap["seed"])
    caption = torch.randn(len(real), c.cls_token_num, c.caption_dim, generator=gen)
    mask = torch.zeros(len(real), c.cls_token_num, dtype=torch.long)
    for row, n in enumerate(real):
        mask[row, c.cls_token_num - n:] = 1  # left padding: the real tokens are the last n
    caption = caption * mask[..., None]
    rows = torch.tensor(cspec["caption_rows"])
    return LlamaGenCondition(caption=caption[rows], caption_mask=mask[rows])


def build_sampler(mspec: dict, name: str, sjd: dict = SJD):
    """The catalog sampler ``name`` with the model spec's settings and entropy preset."""
    from arsample.samplers import SamplerSettings, SJDSettings, named_sampler

    return named_sampler(name, SamplerSettings(**mspec["settings"]), mspec["preset"], SJDSettings(**sjd))


def model_fingerprint(model) -> dict:
    """The model's full configuration and a weight checksum (sum and sum of |w| in float64).

    Stored in the metadata so that a failing test can tell "the model changed" (e.g. the
    ``tinymodels`` defaults or ``randomize_``) from "the sampler changed".
    """
    import dataclasses

    params = [p.detach().double() for p in model.parameters()]
    return {"config": dataclasses.asdict(model.config),
            "weight_sum": float(sum(p.sum() for p in params)),
            "weight_abs_sum": float(sum(p.abs().sum() for p in params))}


def generate(spec: dict = SPEC, log=print, models_out: dict | None = None) -> dict[str, torch.Tensor]:
    """Every recorded tensor, by key; ``models_out`` (if given) receives each model's fingerprint."""
    out: dict[str, torch.Tensor] = {}
    for mname, mspec in spec["models"].items():
        model = build_model(mspec)
        if models_out is not None:
            models_out[mname] = model_fingerprint(model)
        for batch in spec["batches"]:
            cond = build_condition(mspec, model, batch)
            for sname in spec["samplers"]:
                sampler = build_sampler(mspec, sname, spec["sjd"])
                for seed in spec["seeds"]:
                    t0 = time.perf_counter()
                    result = sampler.run(model, cond, seed=seed)
                    k = key(mname, sname, batch, seed)
                    out[k] = result.tokens.to(torch.int64).cpu().contiguous()
                    if batch == 1 and sname in spec["entropy_samplers"]:
                        out[k + "/entropy"] = result.entropy.to(torch.float32).cpu().contiguous()
                    log(f"{k}: {tuple(result.tokens.shape)}, {result.stats.forward_passes} passes, "
                        f"{time.perf_counter() - t0:.2f} s")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    import arsample

    print(f"arsample from {arsample.__file__}", file=sys.stderr)
    models: dict = {}
    tensors = generate(models_out=models)
    from safetensors.torch import save_file

    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"spec": json.dumps(SPEC, sort_keys=True), "models": json.dumps(models, sort_keys=True), "source": f"arsample commit {SOURCE_COMMIT}",
            "torch": torch.__version__, "generator": "tests/make_regression.py"}
    save_file(tensors, str(args.out), metadata=meta)
    print(f"wrote {len(tensors)} tensors to {args.out} ({args.out.stat().st_size} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
