"""Next-token (autoregressive) sampling: prefill, then one cached token per step.

The loop does per step: one forward pass, one shared distribution function, one
device-side draw. Nothing per sample in Python, no host-device sync until the end.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import torch

from .distribution import token_distribution
from .interface import ARModel
from .result import SamplingResult, SamplingStats, entropy_mean_checked
from .rng import make_generator, sample_categorical
from .settings import SamplerSettings

# callback(tokens_done, total, tokens_so_far (B, tokens_done)); may raise to cancel.
StepCallback = Callable[[int, int, torch.Tensor], None]


@torch.no_grad()
def sample_ar(model: ARModel, cond: Any, settings: SamplerSettings, *, num_tokens: int | None = None,
              seed: int = 0, generator: torch.Generator | None = None,
              callback: StepCallback | None = None) -> SamplingResult:
    """Sample ``num_tokens`` image tokens (default: the full grid) for each condition.

    Plain or entropy-temperature sampling depending on ``settings.entropy``.
    Randomness comes only from ``generator`` (or a new one seeded with ``seed``
    on the model's device), so the same seed on the same device gives the same
    tokens whatever the global RNG state. Raises SamplingError for bad settings,
    and at the end if the model's logits were NaN or inf (fp16 overflow).
    """
    total = num_tokens or model.num_image_tokens
    started = time.perf_counter()
    session = model.start_session(cond, guidance=settings.guided, max_new_tokens=total)
    batch = session.batch_size
    settings.validate(session.vocab_size, batch)
    device = model.device
    gen = generator or make_generator(seed, device)
    base_t = settings.temperature_column(batch, device)
    greedy = settings.greedy_rows(batch, device)

    tokens = torch.empty(batch, total, dtype=torch.long, device=device)
    ent = torch.empty(batch, total, dtype=torch.float32, device=device)
    temps = torch.empty(batch, total, dtype=torch.float32, device=device)
    logits = session.prefill()
    passes = 1
    for step in range(total):
        dist = token_distribution(logits, settings, base_t, settings.cfg_active(step), session.guided, greedy)
        nxt = sample_categorical(dist.probs, gen)
        tokens[:, step] = nxt
        ent[:, step] = dist.model_entropy
        temps[:, step] = dist.temperature
        if callback is not None:
            callback(step + 1, total, tokens[:, : step + 1])
        if step + 1 < total:
            feed = torch.cat([nxt, nxt]) if session.guided else nxt
            logits = session.extend(feed[:, None], last_only=True)[:, -1]
            passes += 1
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    stats = SamplingStats(forward_passes=passes, seconds=time.perf_counter() - started, batch_size=batch,
                          num_tokens=total, mean_entropy=entropy_mean_checked(ent))
    return SamplingResult(tokens, ent, temps, stats)

