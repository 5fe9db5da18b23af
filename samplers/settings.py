"""What a sampler is asked to do, validated once before the loop starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .entropy import EntropyTemperature
from .logits import check_sampling_settings


@dataclass(frozen=True)
class SamplerSettings:
    """Next-token sampling settings shared by every sampler.

    ``cfg_scale`` > 1 turns on classifier-free guidance (any value ≤ 1 is off, as in LlamaGen);
    ``cfg_interval`` ≥ 0 switches it off after that many decode steps (-1 = always).
    ``temperature`` is one value or one per sample; 0 means greedy. With
    ``entropy`` set, the entropy map multiplies the temperature (the released
    code's "base temperature"); without it, sampling is plain LlamaGen sampling.
    """

    cfg_scale: float = 1.0
    cfg_interval: int = -1
    top_k: int = 0
    top_p: float = 1.0
    temperature: float | Sequence[float] = 1.0
    entropy: EntropyTemperature | None = None

    def __post_init__(self):
        # Everything that can be checked without the model, so bad input stops before any loading.
        check_sampling_settings(None, self.cfg_scale, self.top_k, self.top_p, self.temperature)

    @property
    def guided(self) -> bool:
        return self.cfg_scale > 1.0

    def cfg_active(self, step: int) -> bool:
        """Whether guidance applies to image token ``step`` (0 = the prefill token)."""
        return self.guided and (self.cfg_interval < 0 or step - 1 <= self.cfg_interval)

    def cfg_active_at(self, positions: torch.Tensor) -> bool | torch.Tensor:
        """Guidance per image-token position (any shape of int64 positions): False, True, or a bool mask.

        A multi-token pass (speculative decoding) can straddle ``cfg_interval``; each of its
        positions must get the guidance a one-token step at that position would get.
        """
        if not self.guided or self.cfg_interval < 0:
            return self.guided
        return positions <= self.cfg_interval + 1

    def validate(self, vocab_size: int, batch_size: int) -> None:
        check_sampling_settings(vocab_size, self.cfg_scale, self.top_k, self.top_p, self.temperature)
        if isinstance(self.temperature, (list, tuple)) and len(self.temperature) not in (1, batch_size):
            from ..errors import SamplingError

            raise SamplingError(f"Got {len(self.temperature)} temperatures for a batch of {batch_size}; "
                                f"give one value or one per sample.")

    def greedy_rows(self, batch_size: int, device) -> torch.Tensor | None:
        """(B, 1) bool mask of samples with temperature 0 (greedy), or None when there are none.

        Decided from the settings on the host, so the sampling loop never syncs to ask.
        """
        temps = self.temperature if isinstance(self.temperature, (list, tuple)) else [self.temperature]
        if all(float(t) > 0 for t in temps):
            return None
        col = torch.tensor([float(t) <= 0 for t in temps], device=device).reshape(-1, 1)
        return col.expand(batch_size, 1) if col.shape[0] == 1 else col

    def temperature_column(self, batch_size: int, device) -> torch.Tensor:
        """Temperatures as a (B, 1) float32 column."""
        t = torch.as_tensor(self.temperature, dtype=torch.float32, device=device).reshape(-1, 1)
        return t.expand(batch_size, 1) if t.shape[0] == 1 else t
