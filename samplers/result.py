"""What a sampler returns: tokens, per-token maps and run statistics."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


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
    """tokens (B, N) int64; entropy and temperature (B, N) float32, raster order."""

    tokens: torch.Tensor
    entropy: torch.Tensor
    temperature: torch.Tensor
    stats: SamplingStats
