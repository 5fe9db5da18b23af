"""Seeded randomness that never touches the global RNG and never syncs the device."""

from __future__ import annotations

import torch


def make_generator(seed: int, device: torch.device | str) -> torch.Generator:
    """A torch.Generator on ``device`` seeded with ``seed`` (same seed, same device → same draws)."""
    gen = torch.Generator(device=torch.device(device))
    gen.manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)
    return gen


def sample_categorical(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One draw per row of ``probs`` (..., V) → indices (...,), int64.

    Uses the exponential-race form of sampling (argmax p / E, E ~ Exp(1)), which
    is exact and, unlike torch.multinomial, needs no host-device sync on CUDA.
    """
    race = torch.empty_like(probs, dtype=torch.float32).exponential_(1.0, generator=generator)
    race.clamp_min_(torch.finfo(torch.float32).tiny)  # a 0 draw would turn p=0 into NaN
    return (probs.float() / race).argmax(dim=-1)
