"""Samplers as values: a decoding method with its options, plus names for hosts that compare several.

A method value (``NextToken``, ``SpeculativeJacobi``, ``NextScale``; the masked order will add
its own) knows its decoding order and runs with ``method.run(model, cond, settings, ...)``.
A ``NamedSampler`` binds a method to token settings (CFG, filters, temperature, entropy
temperature) under a display name. Catalog names (``plain``, ``sjd-entropy``, ...) are what
the demo, the benchmark and the CLI accept; hosts build everything through this module, so
"which sampler is this" is decided here only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

from ..errors import SamplingError
from .entropy import preset
from .masked import Masked, MaskedOptions
from .next_scale import NextScale, NextScaleOptions, ScaleTemperature
from .next_token import SJDSettings, sample_ar, sample_sjd
from .protocols import StepCallback
from .result import SamplingResult
from .settings import SamplerSettings


@dataclass(frozen=True)
class NextToken:
    """Plain next-token decoding: one cached forward pass per token."""

    order: ClassVar[str] = "next-token"

    def run(self, model, cond: Any, settings: SamplerSettings, *, seed: int = 0, num_tokens: int | None = None,
            callback: StepCallback | None = None) -> SamplingResult:
        return sample_ar(model, cond, settings, seed=seed, num_tokens=num_tokens, callback=callback)

    def label(self, entropy: bool) -> str:
        return "entropy" if entropy else "plain"


@dataclass(frozen=True)
class SpeculativeJacobi:
    """Speculative Jacobi decoding with an acceptance rule (see samplers.next_token.sjd)."""

    options: SJDSettings = SJDSettings()
    order: ClassVar[str] = "next-token"

    def run(self, model, cond: Any, settings: SamplerSettings, *, seed: int = 0, num_tokens: int | None = None,
            callback: StepCallback | None = None) -> SamplingResult:
        return sample_sjd(model, cond, settings, self.options, seed=seed, num_tokens=num_tokens, callback=callback)

    def label(self, entropy: bool) -> str:
        """'sjd' or 'coupled', plus the rule when it is not the exact one (e.g. 'coupled-entropy')."""
        o = self.options
        return ("coupled" if o.coupled else "sjd") + ("" if o.acceptance == "exact" else "-" + o.acceptance)


@dataclass(frozen=True)
class NamedSampler:
    """A method bound to its token settings under a name; ``run`` samples with both."""

    name: str
    settings: SamplerSettings
    method: Any = NextToken()

    @property
    def sjd(self) -> SJDSettings | None:
        return self.method.options if isinstance(self.method, SpeculativeJacobi) else None

    def run(self, model, cond: Any, *, seed: int = 0, num_tokens: int | None = None,
            callback: StepCallback | None = None) -> SamplingResult:
        return self.method.run(model, cond, self.settings, seed=seed, num_tokens=num_tokens, callback=callback)


@dataclass(frozen=True)
class _Entry:
    method: Any
    entropy_temperature: bool = False


_CATALOG = {
    "plain": _Entry(NextToken()),
    "entropy": _Entry(NextToken(), entropy_temperature=True),
    "sjd": _Entry(SpeculativeJacobi(SJDSettings(acceptance="exact"))),
    "sjd-entropy": _Entry(SpeculativeJacobi(SJDSettings(acceptance="entropy"))),
    "sjd-entropy-scale": _Entry(SpeculativeJacobi(SJDSettings(acceptance="entropy-scale"))),
    "coupled": _Entry(SpeculativeJacobi(SJDSettings(acceptance="exact", coupled=True))),
    "coupled-entropy": _Entry(SpeculativeJacobi(SJDSettings(acceptance="entropy", coupled=True))),
    # next-scale (VAR): plain, "+Prob." (entropy temperature per token), "+Scale-wise" (default form), both
    "scale": _Entry(NextScale()),
    "scale-entropy": _Entry(NextScale(), entropy_temperature=True),
    "scale-scalewise": _Entry(NextScale(NextScaleOptions(scale_temperature=ScaleTemperature()))),
    "scale-entropy-scalewise": _Entry(NextScale(NextScaleOptions(scale_temperature=ScaleTemperature())),
                                      entropy_temperature=True),
    # masked (MaskGIT/Meissonic): plain, "+Prob." (entropy temperature on the token logits), "+Masking" (on the
    # Gumbel term of the re-masking confidence), both (ARsample's released Meissonic sampler)
    "masked": _Entry(Masked()),
    "masked-prob": _Entry(Masked(MaskedOptions(masking=False)), entropy_temperature=True),
    "masked-masking": _Entry(Masked(MaskedOptions(prob=False)), entropy_temperature=True),
    "masked-prob-masking": _Entry(Masked(), entropy_temperature=True),
}
CATALOG_NAMES = tuple(_CATALOG)


def sampler_names(order: str = "next-token") -> tuple[str, ...]:
    """The catalog names whose method decodes in ``order`` ("next-token", "next-scale" or "masked")."""
    return tuple(name for name, entry in _CATALOG.items() if entry.method.order == order)


# The next-token names (the demo and the benchmark run the embedded next-token model over these).
SAMPLER_NAMES = sampler_names("next-token")
SCALE_SAMPLER_NAMES = sampler_names("next-scale")
MASKED_SAMPLER_NAMES = sampler_names("masked")


def named_sampler(name: str, base: SamplerSettings, entropy_preset: str = "llamagen",
                  sjd: SJDSettings | None = None, next_scale: NextScaleOptions | None = None,
                  masked: MaskedOptions | None = None) -> NamedSampler:
    """A catalog sampler on top of ``base`` settings.

    ``plain``/``entropy``: next-token decoding without/with the entropy temperature (``base.entropy``,
    else ``entropy_preset``). ``sjd``, ``sjd-entropy``, ``sjd-entropy-scale``: speculative Jacobi
    decoding with the exact (lossless) or an entropy-aware (lossy) acceptance rule; ``coupled`` and
    ``coupled-entropy``: the same with coupled drafts. ``sjd`` gives the window, draft init and rule
    constants (the rule and the coupling come from the name). ``scale``, ``scale-entropy``: next-scale
    decoding (VAR) without/with the entropy temperature per token ("+Prob."); ``scale-scalewise`` and
    ``scale-entropy-scalewise`` add the per-scale factor ("+Scale-wise"). ``next_scale`` gives the guidance
    schedule, the filter rule and the scale-wise form (used by the ``-scalewise`` names only; default form
    when it has none).
    """
    if name not in _CATALOG:
        raise SamplingError(f"Unknown sampler '{name}'. Known: {', '.join(CATALOG_NAMES)}.")
    entry = _CATALOG[name]
    settings = replace(base, entropy=(base.entropy or preset(entropy_preset)) if entry.entropy_temperature else None)
    method = entry.method
    if isinstance(method, SpeculativeJacobi) and sjd is not None:
        method = SpeculativeJacobi(replace(sjd, acceptance=method.options.acceptance, coupled=method.options.coupled))
    if isinstance(method, NextScale) and next_scale is not None:
        scale_wise = method.options.scale_temperature is not None
        form = (next_scale.scale_temperature or method.options.scale_temperature) if scale_wise else None
        method = NextScale(replace(next_scale, scale_temperature=form))
    if isinstance(method, Masked) and masked is not None:
        method = Masked(replace(masked, prob=method.options.prob, masking=method.options.masking))
    return NamedSampler(name, settings, method)
