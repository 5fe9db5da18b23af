"""Samplers by name, for hosts that compare several (demo, benchmark, nodes)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..errors import SamplingError
from .ar import StepCallback, sample_ar
from .entropy import preset
from .result import SamplingResult
from .settings import SamplerSettings

SAMPLER_NAMES = ("plain", "entropy")


@dataclass(frozen=True)
class NamedSampler:
    """A sampler name plus its complete settings; ``run`` samples with it."""

    name: str
    settings: SamplerSettings

    def run(self, model, cond: Any, *, seed: int = 0, num_tokens: int | None = None,
            callback: StepCallback | None = None) -> SamplingResult:
        return sample_ar(model, cond, self.settings, seed=seed, num_tokens=num_tokens, callback=callback)


def named_sampler(name: str, base: SamplerSettings, entropy_preset: str = "llamagen") -> NamedSampler:
    """``plain`` (base settings, no entropy map) or ``entropy`` (base settings + a preset)."""
    if name == "plain":
        return NamedSampler(name, replace(base, entropy=None))
    if name == "entropy":
        return NamedSampler(name, replace(base, entropy=base.entropy or preset(entropy_preset)))
    raise SamplingError(f"Unknown sampler '{name}'. Known: {', '.join(SAMPLER_NAMES)}.")
