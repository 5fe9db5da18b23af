"""Samplers by name, for hosts that compare several (demo, benchmark, nodes, CLI)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..errors import SamplingError
from .ar import StepCallback, sample_ar
from .entropy import preset
from .result import SamplingResult
from .settings import SamplerSettings
from .sjd import SJDSettings, sample_sjd

# name → (entropy temperature?, SJD acceptance rule or None, coupled drafts?)
_CATALOG = {
    "plain": (False, None, False),
    "entropy": (True, None, False),
    "sjd": (False, "exact", False),
    "sjd-entropy": (False, "entropy", False),
    "sjd-entropy-scale": (False, "entropy-scale", False),
    "coupled": (False, "exact", True),
    "coupled-entropy": (False, "entropy", True),
}
SAMPLER_NAMES = tuple(_CATALOG)
AR_SAMPLERS = ("plain", "entropy")


@dataclass(frozen=True)
class NamedSampler:
    """A sampler name plus its complete settings; ``run`` samples with it."""

    name: str
    settings: SamplerSettings
    sjd: SJDSettings | None = None

    def run(self, model, cond: Any, *, seed: int = 0, num_tokens: int | None = None,
            callback: StepCallback | None = None) -> SamplingResult:
        if self.sjd is None:
            return sample_ar(model, cond, self.settings, seed=seed, num_tokens=num_tokens, callback=callback)
        return sample_sjd(model, cond, self.settings, self.sjd, seed=seed, num_tokens=num_tokens, callback=callback)


def named_sampler(name: str, base: SamplerSettings, entropy_preset: str = "llamagen",
                  sjd: SJDSettings | None = None) -> NamedSampler:
    """A catalog sampler on top of ``base`` settings.

    ``plain``/``entropy``: AR without/with the entropy temperature. ``sjd``,
    ``sjd-entropy``, ``sjd-entropy-scale``: speculative Jacobi decoding with the
    exact (lossless) or an entropy-aware (lossy) acceptance rule; ``coupled`` and
    ``coupled-entropy``: the same with coupled drafts. ``sjd`` gives the window,
    draft init and rule constants (its rule and coupling are set by the name).
    """
    if name not in _CATALOG:
        raise SamplingError(f"Unknown sampler '{name}'. Known: {', '.join(SAMPLER_NAMES)}.")
    temperature, rule, coupled = _CATALOG[name]
    settings = replace(base, entropy=(base.entropy or preset(entropy_preset)) if temperature else None)
    if rule is None:
        return NamedSampler(name, settings)
    return NamedSampler(name, settings, replace(sjd or SJDSettings(), acceptance=rule, coupled=coupled))
