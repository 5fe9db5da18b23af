"""Per-scale schedules of next-scale sampling: the guidance ramp and the "+Scale-wise" temperature factor.

Scales are indexed si = 0 … S − 1 (coarse to fine); r = si / (S − 1) (0 when S = 1).

Guidance (``cfg_schedule``), with c = ``SamplerSettings.cfg_scale``:

- ``"linear"`` (VAR and STAR, the reference ``autoregressive_infer_cfg``): t = c·r and the guided
  logits are (1 + t)·cond − t·uncond, i.e. the guidance scale 1 + t grows linearly from 1 (no
  guidance) at the first scale to 1 + c at the last. ``cfg_scale`` is therefore VAR's own ``cfg``
  number (1.5 in its FID evaluation, 4 in its demo), and any c > 0 runs the unconditional rows.
- ``"constant"``: guidance scale c at every scale, uncond + c·(cond − uncond) (LlamaGen's form; on
  when c > 1). Not used by any reference; for experiments.

"+Scale-wise" (``ScaleTemperature``): a per-scale factor f_s that multiplies each token's temperature
(the entropy temperature T(H) with "+Prob.", else the base temperature), larger for early scales and
smaller for late ones. The paper (Ma et al. 2025, Sec. 3.3, App. D.1.3) says so and gives β = 0.3 for
the decay, but its equation is not decoded (docs: method-research §1.7, §6.d; families-research §13.1),
so the form is a choice, with s = si + 1 ∈ {1 … S} and m = ⌊S/2⌋:

- ``"centered-normalized"`` (default form): f_s = 1 − β·(s − m)/S, then clamped. The rendering
  recommended in method-research §1.7 (a guess: the literal form below cannot be right for 10+
  scales, so it is normalised by S). For S = 10, β = 0.3: 1.12 at the first scale, 0.85 at the last.
- ``"centered"``: f_s = 1 − β·(s − m), then clamped: the third-party summary's formula taken
  literally. For S = 10, β = 0.3 it reaches 0 at s = 8⅓ and goes negative after, so it needs the
  clamp (``clamp_min`` > 0 is required); with the default clamp [0.5, 1.5] it is 1.5 for s ≤ 3, 1.3,
  1.0, 0.7, then 0.5.
- ``"table"``: the factors given in ``factors``, one per scale (for any other hypothesis).

The clamp applies to every form; default [0.5, 1.5] (method-research §1.7), None = no bound.
Off unless a ``ScaleTemperature`` is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...errors import SamplingError
from ..logits import require_finite

CFG_SCHEDULES = ("linear", "constant")
SCALE_TEMPERATURE_FORMS = ("centered-normalized", "centered", "table")


def scale_ratio(si: int, num_scales: int) -> float:
    """si / (S − 1), the reference's ``ratio`` (0 for a single scale)."""
    return si / (num_scales - 1) if num_scales > 1 else 0.0


def guidance_on(schedule: str, cfg: float) -> bool:
    """Whether a run needs the unconditional rows at all."""
    return cfg > 0 if schedule == "linear" else cfg > 1


def guidance_weight(schedule: str, cfg: float, si: int, num_scales: int) -> float:
    """t such that the guided logits are (1 + t)·cond − t·uncond at scale ``si``."""
    if schedule == "linear":
        return cfg * scale_ratio(si, num_scales)
    return cfg - 1.0


@dataclass(frozen=True)
class ScaleTemperature:
    """The "+Scale-wise" per-scale temperature factor (see the module docstring for each form)."""

    form: str = "centered-normalized"
    beta: float = 0.3
    clamp_min: float | None = 0.5
    clamp_max: float | None = 1.5
    factors: tuple[float, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "factors", tuple(float(f) for f in self.factors))
        require_finite(beta=self.beta, clamp_min=self.clamp_min, clamp_max=self.clamp_max, factors=list(self.factors))
        if self.form not in SCALE_TEMPERATURE_FORMS:
            raise SamplingError(f"Unknown scale-wise form '{self.form}'. Known: {', '.join(SCALE_TEMPERATURE_FORMS)}.")
        if self.clamp_min is not None and self.clamp_max is not None and self.clamp_min > self.clamp_max:
            raise SamplingError(f"scale-wise clamp min {self.clamp_min} is above clamp max {self.clamp_max}.")
        if self.clamp_min is not None and self.clamp_min < 0:
            raise SamplingError(f"scale-wise clamp min must be ≥ 0; got {self.clamp_min}.")
        if self.form == "centered" and not (self.clamp_min and self.clamp_min > 0):
            raise SamplingError("The 'centered' scale-wise form goes negative on late scales: give clamp_min > 0.")
        if self.form == "table" and (not self.factors or any(f < 0 for f in self.factors)):
            raise SamplingError("The 'table' scale-wise form needs one factor ≥ 0 per scale in 'factors'.")

    def factor(self, si: int, num_scales: int) -> float:
        """f for scale ``si`` (0-based) of ``num_scales``."""
        s, m = si + 1, num_scales // 2
        if self.form == "table":
            if len(self.factors) != num_scales:
                raise SamplingError(f"The scale-wise table has {len(self.factors)} factors for a model of "
                                    f"{num_scales} scales; give one per scale.")
            f = self.factors[si]
        elif self.form == "centered":
            f = 1.0 - self.beta * (s - m)
        else:
            f = 1.0 - self.beta * (s - m) / num_scales
        if self.clamp_min is not None:
            f = max(f, self.clamp_min)
        if self.clamp_max is not None:
            f = min(f, self.clamp_max)
        if not math.isfinite(f) or f < 0:
            raise SamplingError(f"The scale-wise factor of scale {si} is {f}; adjust beta or the clamp.")
        return f

    def factors_for(self, num_scales: int) -> list[float]:
        return [self.factor(si, num_scales) for si in range(num_scales)]
