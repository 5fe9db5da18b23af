"""Next-token (autoregressive) sampling: prefill, then one cached token per step.

Per step: one forward pass, the shared distribution function, one device-side
draw. Nothing per sample in Python, no host-device sync until the end.
"""

from __future__ import annotations

from typing import Any

import torch

from ..protocols import NextTokenModel, StepCallback
from ..result import SamplingResult
from ..run import DecodeRun
from ..rng import sample_categorical
from ..settings import SamplerSettings
from .layout import run_layout


@torch.no_grad()
def sample_ar(model: NextTokenModel, cond: Any, settings: SamplerSettings, *, num_tokens: int | None = None,
              seed: int = 0, callback: StepCallback | None = None) -> SamplingResult:
    """Sample ``num_tokens`` image tokens (default: the full grid) for each condition.

    Plain LlamaGen sampling, or the entropy temperature when ``settings.entropy`` is set.
    Randomness comes only from a generator seeded with ``seed`` on the model's device, so
    the same seed on the same device gives the same tokens whatever the global RNG state.
    Raises SamplingError for bad settings, and at the end if the model's logits were NaN
    or inf (fp16 overflow). Source: LlamaGen ``generate`` (autoregressive/models/generate.py).
    """
    total = num_tokens or model.num_image_tokens
    session = model.start_session(cond, guidance=settings.guided, max_new_tokens=total)
    run = DecodeRun(settings, batch=session.batch_size, total=total, vocab=session.vocab_size, seed=seed,
                    device=session.device, layout=run_layout(model, total), callback=callback)
    logits = session.prefill()
    run.passes = 1
    for step in range(total):
        dist = run.distribution(logits, settings.cfg_active(step))
        run.record(step, sample_categorical(dist.probs, run.generator), dist)
        run.report(step + 1, committed=step + 1)
        if step + 1 < total:
            cond_l, uncond_l = session.extend(run.tokens[:, step:step + 1], last_only=True)
            logits = (cond_l[:, -1], None if uncond_l is None else uncond_l[:, -1])
            run.passes += 1
    return run.finish()
