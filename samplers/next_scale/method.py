"""The next-scale sampler as a method value, for the catalog (``samplers.catalog``) and hosts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ...errors import SamplingError
from ..protocols import StepCallback
from ..result import SamplingResult
from ..settings import SamplerSettings
from .sampler import NextScaleOptions, sample_next_scale


@dataclass(frozen=True)
class NextScale:
    """Next-scale decoding (VAR, STAR): one forward pass per scale."""

    options: NextScaleOptions = NextScaleOptions()
    order: ClassVar[str] = "next-scale"

    def run(self, model, cond: Any, settings: SamplerSettings, *, seed: int = 0, num_tokens: int | None = None,
            callback: StepCallback | None = None) -> SamplingResult:
        total = getattr(model, "num_image_tokens", None)
        if num_tokens is not None and num_tokens != total:
            raise SamplingError(f"Next-scale models decode every scale ({total} tokens); a token count of "
                                f"{num_tokens} does not apply.")
        return sample_next_scale(model, cond, settings, seed=seed, callback=callback, options=self.options)

    def label(self, entropy: bool) -> str:
        """'scale', 'scale-entropy', plus '-scalewise' with the per-scale factor."""
        name = "scale-entropy" if entropy else "scale"
        return name + ("-scalewise" if self.options.scale_temperature is not None else "")
