"""Which drafts speculative decoding keeps: the exact rule and the paper's entropy-aware rules.

A draft d at a position with target p and draft distribution q is accepted when
r̃ ≤ min(1, p(d)/q(d)), r ~ U(0, 1), where the rule transforms r:

- ``exact``: r̃ = r, the standard speculative test; lossless (SJD, arXiv 2410.01699);
- ``entropy``: the paper's rule as reconstructed, r̃ = s·(0.5 + (r − 0.5)(1 − H/λ)) with
  s = clamp(H/e, floor, 1) (Ma et al., arXiv 2510.09012, Sec. 3.3); lossy;
- ``entropy-scale``: the released ARsample code, r̃ = r·clamp(H/e, floor, 1); lossy;
- ``constant``: the released ablation, r̃ = c·r; lossy.

H is the entropy (nats) of the guided model distribution at that position. At the first
rejection the token is drawn from norm(max(0, p − q)) (``residual``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import SamplingError
from ..logits import require_finite

ACCEPTANCE_RULES = ("exact", "entropy", "entropy-scale", "constant")
LOSSLESS_RULES = ("exact",)


@dataclass(frozen=True)
class AcceptanceRule:
    """An acceptance rule and its constants (e, λ and the floor of the entropy rules; c of ``constant``)."""

    name: str = "exact"
    entropy_e: float = 8.0
    entropy_lambda: float = 16.0
    scale_floor: float = 0.05
    constant: float = 0.5

    def __post_init__(self):
        require_finite(entropy_e=self.entropy_e, entropy_lambda=self.entropy_lambda, scale_floor=self.scale_floor,
                       constant=self.constant)
        if self.name not in ACCEPTANCE_RULES:
            raise SamplingError(f"Unknown acceptance rule '{self.name}'. Known: {', '.join(ACCEPTANCE_RULES)}.")
        if not 0 < self.constant <= 1:
            raise SamplingError(f"The constant acceptance factor must be in (0, 1]; got {self.constant}.")
        if self.entropy_e <= 0 or self.entropy_lambda <= 0 or not 0 <= self.scale_floor <= 1:
            raise SamplingError("entropy e and λ must be > 0 and the scale floor in [0, 1].")

    @property
    def lossless(self) -> bool:
        return self.name in LOSSLESS_RULES

    def threshold(self, r: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """The transformed uniform draw r̃ (same shape as r and h)."""
        if self.name == "exact":
            return r
        if self.name == "constant":
            return r * self.constant
        scale = (h / self.entropy_e).clamp(self.scale_floor, 1.0)
        if self.name == "entropy-scale":
            return r * scale
        return scale * (0.5 + (r - 0.5) * (1.0 - h / self.entropy_lambda).clamp(min=0.0))

    def accepted_prefix(self, r: torch.Tensor, h: torch.Tensor, p_draft: torch.Tensor, q_draft: torch.Tensor,
                        valid: torch.Tensor) -> torch.Tensor:
        """Accepted drafts per sample (B,) from (B, M) draws, entropies and draft probabilities.

        ``valid`` (B, M) masks the drafts each sample really has; the first rejection ends its run.
        """
        ratio = (p_draft / q_draft.clamp_min(1e-30)).clamp(max=1.0)
        ok = (self.threshold(r, h) <= ratio) & valid
        return ok.long().cumprod(1).sum(1)


def residual(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """norm(max(0, p − q)) over the last dim; p itself where p ≤ q everywhere (nothing left to correct)."""
    rest = (p - q).clamp_min(0.0)
    mass = rest.sum(-1, keepdim=True)
    return torch.where(mass > 1e-12, rest / mass.clamp_min(1e-30), p)


def acceptance_threshold(r: torch.Tensor, h: torch.Tensor, rule) -> torch.Tensor:
    """r̃ for an AcceptanceRule (or SJDSettings, through its ``rule``)."""
    return getattr(rule, "rule", rule).threshold(r, h)
