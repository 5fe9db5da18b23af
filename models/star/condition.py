"""What STAR generates from: the text encoder's outputs for the prompts and for the empty prompt.

STAR reads three things from its text encoder (CLIP ViT-H/14 of Stable Diffusion 2.1, HF
``CLIPTextModel``, padded to 77 tokens): the last hidden states (after the final LayerNorm), the
attention mask (1 = token, 0 = padding) and the pooled vector (``pooler_output``: the hidden state
at the end token). The unconditional rows of classifier-free guidance are the empty prompt's
outputs ("" through the same encoder). Encoding is not this module's job.

Source: Davinci-XLab/STAR-T2I ``models/text_encoder.py`` (``extract_text_features``), ``sample.py``
(prompts + [""]·B encoded together: rows [cond…; uncond…]).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

from ...errors import SamplingError


@dataclass
class StarCondition:
    """Text features of B prompts and, for guidance, of the empty prompt.

    ``states`` (B, T, D) float, ``mask`` (B, T) of 0/1 (any integer, bool or float dtype),
    ``pooled`` (B, D) float. ``null_states`` / ``null_mask`` / ``null_pooled``: the empty prompt's,
    with 1 row (shared by every prompt) or B rows; needed only with guidance.
    """

    states: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor
    null_states: torch.Tensor | None = None
    null_mask: torch.Tensor | None = None
    null_pooled: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return int(self.states.shape[0])

    @property
    def has_null(self) -> bool:
        return self.null_states is not None and self.null_mask is not None and self.null_pooled is not None

    def rows(self, guidance: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(states, mask, pooled) of every row the model runs: the B prompts, then (with ``guidance``)
        B empty-prompt rows. Raises SamplingError on missing or mis-shaped features."""
        check_text(self.states, self.mask, self.pooled, "prompt")
        if not guidance:
            return self.states, self.mask, self.pooled
        if not self.has_null:
            raise SamplingError("Guidance needs the empty prompt's text features (null_states, null_mask, "
                                "null_pooled); give them, or set the guidance scale to 0.")
        check_text(self.null_states, self.null_mask, self.null_pooled, "empty-prompt")
        b, n = self.batch_size, int(self.null_states.shape[0])
        if n not in (1, b):
            raise SamplingError(f"The empty prompt's features have {n} rows; give 1 (shared) or {b} (one per prompt).")
        if tuple(self.null_states.shape[1:]) != tuple(self.states.shape[1:]):
            raise SamplingError(f"The empty prompt's features {tuple(self.null_states.shape[1:])} do not match the "
                                f"prompts' {tuple(self.states.shape[1:])}; encode both with the same text encoder.")

        def both(cond: torch.Tensor, null: torch.Tensor) -> torch.Tensor:
            null = null.to(device=cond.device, dtype=cond.dtype)
            return torch.cat((cond, null.expand(b, *null.shape[1:])), dim=0)

        return both(self.states, self.null_states), both(self.mask, self.null_mask), both(self.pooled, self.null_pooled)


def check_text(states: torch.Tensor, mask: torch.Tensor, pooled: torch.Tensor, what: str) -> None:
    """Raise SamplingError unless states (B, T, D), mask (B, T) and pooled (B, D) agree."""
    if states.dim() != 3 or mask.dim() != 2 or pooled.dim() != 2:
        raise SamplingError(f"The {what} text features must be states (batch, tokens, width), mask (batch, tokens) "
                            f"and pooled (batch, width); got {tuple(states.shape)}, {tuple(mask.shape)}, "
                            f"{tuple(pooled.shape)}.")
    b, t, d = states.shape
    if tuple(mask.shape) != (b, t) or tuple(pooled.shape) != (b, d):
        raise SamplingError(f"The {what} text features disagree: states {tuple(states.shape)}, mask "
                            f"{tuple(mask.shape)}, pooled {tuple(pooled.shape)}.")
    if b < 1:
        raise SamplingError("Give at least one prompt.")


def as_condition(cond: Any) -> StarCondition:
    """A StarCondition from itself or from a mapping with its field names; SamplingError otherwise."""
    if isinstance(cond, StarCondition):
        return cond
    if isinstance(cond, Mapping) and {"states", "mask", "pooled"} <= set(cond):
        fields = {k: cond.get(k) for k in StarCondition.__dataclass_fields__}
        return StarCondition(**fields)
    raise SamplingError("STAR is a text-to-image model: give the text encoder's features (a StarCondition), "
                        "not class labels.")


__all__ = ["StarCondition", "check_text", "as_condition"]
