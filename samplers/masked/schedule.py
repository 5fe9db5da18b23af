"""The step schedules of masked decoding: how many tokens stay masked, and the choice temperature.

Both follow diffusers' ``AmusedScheduler`` (``set_timesteps`` and ``step``; Meissonic's scheduler and
ARsample's Meissonic scheduler compute them the same way), value for value: the numbers below are
computed with the same float32 torch operations, one step at a time, so a run re-masks exactly as
many tokens as the reference at every step.

Steps are indexed s = 0 … S − 1; r = (s + 1)/S.

- Masked after step s (not for the last step, which commits everything):
  ``floor(N · m(r))`` with m = cos(π/2 · r) ("cosine", MaskGIT's default) or 1 − r ("linear");
  the sampler then clips it per sample to [1, #still-masked − 1] (``mask_lengths`` gives the
  unclipped value).
- Choice temperature τ_s: ``linspace(start, end, S)[s]`` in float32, (2, 0) by default (the
  pipelines' ``temperature=(2, 0)``): the scale of the Gumbel noise in the re-masking confidence,
  annealed so that late steps rank by probability alone.
"""

from __future__ import annotations

import math

import torch

from ...errors import SamplingError
from ..logits import require_finite

MASK_SCHEDULES = ("cosine", "linear")


def mask_ratio(step: int, steps: int, schedule: str = "cosine") -> torch.Tensor:
    """The reference's float32 mask ratio after ``step`` (0-based) of ``steps``, a (1, 1) tensor."""
    if schedule not in MASK_SCHEDULES:
        raise SamplingError(f"Unknown mask schedule '{schedule}'. Known: {', '.join(MASK_SCHEDULES)}.")
    ratio = (torch.tensor([[step]]) + 1) / steps  # int64 → float32 true division, as the reference
    return torch.cos(ratio * math.pi / 2) if schedule == "cosine" else 1 - ratio


def mask_lengths(num_tokens: int, steps: int, schedule: str = "cosine") -> list[int]:
    """Tokens left masked after each step but the last, before the per-sample clip: S − 1 ints.

    ``floor(num_tokens · ratio)`` in float32, one step at a time (a vectorised cos may round
    differently from the reference's one-element one). Pure host arithmetic, computed once per run.
    """
    return [int((num_tokens * mask_ratio(s, steps, schedule)).floor().item()) for s in range(steps - 1)]


def choice_temperatures(steps: int, start: float = 2.0, end: float = 0.0,
                        device: torch.device | str = "cpu") -> torch.Tensor:
    """τ for every step, float32 (S,): ``torch.linspace(start, end, steps)`` as the reference."""
    require_finite(choice_temperature=[start, end])
    if start < 0 or end < 0:
        raise SamplingError(f"The choice temperature must be ≥ 0 at both ends; got ({start}, {end}).")
    return torch.linspace(start, end, steps).to(device)
