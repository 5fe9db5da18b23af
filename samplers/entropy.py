"""Entropy-informed temperature (Ma et al., NeurIPS 2025, arXiv 2510.09012, Eq. 1-2).

Per token: H = −Σ p log p (nats) of the next-token distribution, and
T = T0 · exp(−H / α) + θ, optionally clamped and multiplied by a base
temperature. Flat, predictable regions (low H) get a higher temperature, busy
regions (high H) a lower one. It costs one softmax per token, no forward pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from ..errors import SamplingError
from .logits import require_finite


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of softmax(logits) over the last dim; -inf logits count as p = 0."""
    probs = logits.float().softmax(-1)
    return torch.special.entr(probs).sum(-1)


@dataclass(frozen=True)
class EntropyTemperature:
    """Parameters of the entropy → temperature map.

    ``source``: "filtered" measures H after top-k/top-p (the released LlamaGen
    code), "raw" before them. ``base`` multiplies the map (the released COCO
    script used 1.4; the paper's Eq. 2 is base 1).
    """

    t0: float = 2.5
    alpha: float = 3.0
    theta: float = 0.6
    clamp_min: float | None = None
    clamp_max: float | None = None
    source: str = "filtered"

    def __post_init__(self):
        require_finite(T0=self.t0, alpha=self.alpha, theta=self.theta, clamp_min=self.clamp_min,
                       clamp_max=self.clamp_max)
        if self.alpha <= 0:
            raise SamplingError(f"alpha must be > 0; got {self.alpha}.")
        if self.t0 < 0 or self.theta < 0:
            raise SamplingError(f"T0 and theta must be ≥ 0; got T0={self.t0}, theta={self.theta}.")
        if self.source not in ("filtered", "raw"):
            raise SamplingError(f"entropy source must be 'filtered' or 'raw'; got '{self.source}'.")
        if self.clamp_min is not None and self.clamp_max is not None and self.clamp_min > self.clamp_max:
            raise SamplingError(f"clamp min {self.clamp_min} is above clamp max {self.clamp_max}.")

    def temperature(self, h: torch.Tensor) -> torch.Tensor:
        """T(H) = T0·exp(−H/α) + θ, clamped if set (same shape as h)."""
        t = self.t0 * torch.exp(-h / self.alpha) + self.theta
        if self.clamp_min is not None or self.clamp_max is not None:
            t = t.clamp(self.clamp_min, self.clamp_max)
        return t


# (T0, alpha, theta, clamp) per model family, from the paper's Table 5 and the released code.
PRESETS: dict[str, EntropyTemperature] = {
    "llamagen": EntropyTemperature(2.5, 3.0, 0.6),
    "lumina-mgpt": EntropyTemperature(2.0, 2.5, 0.6),
    "lumina-mgpt-code": EntropyTemperature(1.5, 2.5, 0.7, clamp_min=0.7, clamp_max=2.0, source="raw"),
    "meissonic": EntropyTemperature(2.5, 3.0, 0.7),
    "star": EntropyTemperature(2.5, 3.0, 0.5),
}


# Per-token entropy (nats) of LlamaGen t2i at 256 px and CFG 7.5 on COCO, mean and standard deviation
# (paper Table 4: mean 4.76, variance 2.75): the scale the published LlamaGen preset was tuned on.
REFERENCE_ENTROPY = (4.76, 2.75 ** 0.5)


def rescaled(base: EntropyTemperature, mean: float, std: float,
             reference: tuple[float, float] = REFERENCE_ENTROPY) -> EntropyTemperature:
    """``base`` moved to a model whose per-token entropy has ``mean`` and ``std`` (nats).

    The preset was tuned on entropies of another scale (a 16,384-token vocabulary at 4.76 ± 1.66
    nats); a small-vocabulary model runs at a fraction of that and would be heated everywhere. Each
    entropy is mapped to the reference scale, H' = a·H + b with a = ref_std/std, b = ref_mean − a·mean,
    and the map is folded into the parameters: T0' = T0·exp(−b/α), α' = α/a, θ' = θ. So a token as
    typical (in standard deviations) as a LlamaGen token gets the temperature that token would get.
    """
    if std <= 0:
        raise SamplingError(f"entropy std must be > 0; got {std}.")
    ref_mean, ref_std = reference
    a = ref_std / std
    b = ref_mean - a * mean
    return replace(base, t0=base.t0 * math.exp(-b / base.alpha), alpha=base.alpha / a)


# The LlamaGen preset moved to the embedded tiny model's entropy scale with ``rescaled``: the
# calibration (the model's per-token entropy at its defaults, measured once) lives in
# lab/calibration.py, which checks that it still gives these values.
PRESETS["embedded"] = EntropyTemperature(0.9801424620456299, 0.9226247144079568, 0.6, source="raw")
# The paper's scale-wise (STAR) preset moved the same way to the embedded next-scale model ("tiny-var").
PRESETS["embedded-var"] = EntropyTemperature(1.9326772604445344, 1.5196171766719286, 0.5, source="raw")
# Meissonic's preset moved the same way to the embedded masked model ("tiny-masked").
PRESETS["embedded-masked"] = EntropyTemperature(1.3532385836027925, 1.3568010505999364, 0.7, source="raw")


def preset(name: str, **overrides) -> EntropyTemperature:
    """A named preset with optional field overrides (None values are ignored)."""
    key = name.lower().replace("_", "-")
    if key not in PRESETS:
        raise SamplingError(f"Unknown entropy preset '{name}'. Known: {', '.join(PRESETS)}.")
    changes = {k: v for k, v in overrides.items() if v is not None}
    return replace(PRESETS[key], **changes)


def preset_or_custom(name: str, *, t0: float, alpha: float, theta: float, clamp_min: float = 0.0,
                     clamp_max: float = 0.0, source: str = "filtered") -> EntropyTemperature | None:
    """The entropy map a host's preset menu asks for: 'off' → None; 'custom' → the given values
    (a clamp of 0 means none); a preset name → that preset exactly as defined, its entropy source
    included (the other arguments are ignored, so a preset gives the same tokens in every host).
    """
    if name == "off":
        return None
    if name == "custom":
        return EntropyTemperature(t0, alpha, theta, clamp_min or None, clamp_max or None, source)
    return preset(name)
