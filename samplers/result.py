"""What a sampler returns: tokens, per-token maps and run statistics."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import SamplingError
from .layout import TokenLayout


@dataclass
class SamplingStats:
    """Cost of one sampling run. ``forward_passes`` counts model calls, prefill included."""

    forward_passes: int = 0
    seconds: float = 0.0
    batch_size: int = 0
    num_tokens: int = 0
    mean_entropy: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / max(1, self.batch_size)

    def summary(self) -> str:
        """One line for logs and UI: forward passes, seconds, mean entropy."""
        parts = [f"{self.forward_passes} forward passes for {self.num_tokens} tokens",
                 f"{self.seconds:.2f} s ({self.seconds_per_image:.2f} s/image)",
                 f"mean entropy {self.mean_entropy:.2f} nats"]
        parts += [f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in self.extra.items()]
        return ", ".join(parts)


@dataclass
class SamplingResult:
    """tokens (B, N) int64; entropy (nats) and temperature (B, N) float32, in ``layout`` order."""

    tokens: torch.Tensor
    entropy: torch.Tensor
    temperature: torch.Tensor
    stats: SamplingStats
    layout: TokenLayout | None = None


def non_finite_error(bad: int, total: int) -> SamplingError:
    """The error for logits that were NaN or inf at ``bad`` of ``total`` token positions."""
    return SamplingError(
        f"The model's logits were not finite (NaN or inf) at {bad} of {total} token positions, so no image was "
        f"made. This is most often fp16 overflow: load the model in bf16 or fp32 (CLI --dtype bf16, node "
        f"weight_dtype bf16). If bf16/fp32 fail too, the checkpoint holds NaN/inf weights: download it again.")


def entropy_mean_checked(entropy: torch.Tensor) -> float:
    """Mean of a run's per-token entropy (B, N), read in the run's one final host sync.

    A non-finite logit anywhere in a row makes that token's entropy NaN, so this is also where
    a run learns that its model overflowed; raises SamplingError (see non_finite_error) then.
    """
    mean, bad = torch.stack([entropy.float().mean(), (~torch.isfinite(entropy)).sum().float()]).tolist()
    if bad:
        raise non_finite_error(int(bad), entropy.numel())
    return mean
