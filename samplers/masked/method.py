"""The masked sampler as a method value, for the catalog (``samplers.catalog``) and hosts.

How the entropy switches are expressed: the entropy map itself comes from ``SamplerSettings.entropy``
as in every other order (a catalog name with the entropy temperature sets it from a preset,
"meissonic" for Meissonic); ``MaskedOptions.prob`` ("+Prob.", on the token logits) and
``MaskedOptions.masking`` ("+Masking", on the Gumbel term of the re-masking confidence) say where
it applies. Without ``settings.entropy`` both are ignored (plain MaskGIT / aMUSEd decoding); with it
and both on, the run is ARsample's released Meissonic sampler; with it and both off, it is plain too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ...errors import SamplingError
from ..protocols import StepCallback
from ..result import SamplingResult
from ..settings import SamplerSettings
from .sampler import MaskedOptions, sample_masked


@dataclass(frozen=True)
class Masked:
    """Masked decoding (MaskGIT, MUSE, aMUSEd, Meissonic): ``options.steps`` passes over the whole grid."""

    options: MaskedOptions = MaskedOptions()
    order: ClassVar[str] = "masked"

    def run(self, model, cond: Any, settings: SamplerSettings, *, seed: int = 0, num_tokens: int | None = None,
            callback: StepCallback | None = None) -> SamplingResult:
        total = getattr(model, "num_image_tokens", None)
        if num_tokens is not None and num_tokens != total:
            raise SamplingError(f"Masked models decode the whole grid ({total} tokens); a token count of "
                                f"{num_tokens} does not apply.")
        return sample_masked(model, cond, settings, options=self.options, seed=seed, callback=callback)

    def label(self, entropy: bool) -> str:
        """'masked', or with the entropy temperature 'masked-prob', 'masked-masking', 'masked-prob-masking'."""
        parts = ["masked"]
        if entropy and self.options.prob:
            parts.append("prob")
        if entropy and self.options.masking:
            parts.append("masking")
        return "-".join(parts)
