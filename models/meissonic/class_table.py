"""Class conditioning for a Meissonic transformer: learned stand-ins for the text encoder's outputs.

Meissonic reads text hidden states (B, L, J) and a pooled vector (B, P). A class-conditional model
(the embedded ``tiny-masked``) learns one such pair per class, plus a "null class" row (index
``num_classes``) that plays the negative / empty prompt for guidance. The table is stored beside the
transformer's own keys (official diffusers names, unchanged) under ``class_embedding.``, so the
transformer part of the file loads through the same strict path as a released checkpoint.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn as nn

from ...errors import CheckpointError

PREFIX = "class_embedding."


class ClassEmbedding(nn.Module):
    """``states`` (C + 1, L, J) and ``pooled`` (C + 1, P) parameters; row C is the null class."""

    def __init__(self, num_classes: int, length: int, width: int, pooled_width: int):
        super().__init__()
        self.states = nn.Parameter(torch.zeros(num_classes + 1, length, width))
        self.pooled = nn.Parameter(torch.zeros(num_classes + 1, pooled_width))

    @property
    def num_classes(self) -> int:
        return int(self.states.shape[0]) - 1

    @property
    def null_class(self) -> int:
        return self.num_classes

    def forward(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """labels (B,) int64 in [0, C] → (states (B, L, J), pooled (B, P)) in the table's dtype."""
        labels = labels.to(self.states.device)
        return self.states[labels], self.pooled[labels]

    @classmethod
    def from_state(cls, state: Mapping[str, torch.Tensor], filename: str, dtype: torch.dtype,
                   device) -> "ClassEmbedding":
        """The table from its two tensors (keys without the prefix); CheckpointError if they disagree."""
        try:
            states, pooled = state["states"], state["pooled"]
        except KeyError as missing:
            raise CheckpointError(f"'{filename}' has a partial class table: {PREFIX}{missing.args[0]} is missing.") \
                from None
        if states.ndim != 3 or pooled.ndim != 2 or states.shape[0] != pooled.shape[0] or states.shape[0] < 2:
            raise CheckpointError(f"'{filename}' has a malformed class table: states {tuple(states.shape)}, pooled "
                                  f"{tuple(pooled.shape)} (expected (C + 1, L, J) and (C + 1, P)).")
        table = cls(states.shape[0] - 1, states.shape[1], states.shape[2], pooled.shape[1])
        table.load_state_dict({"states": states.to(dtype), "pooled": pooled.to(dtype)})
        return table.to(device).eval().requires_grad_(False)


def split_class_embedding(state: Mapping[str, torch.Tensor]) -> tuple[dict, dict]:
    """(transformer state, class-table state without the prefix; empty for a text model)."""
    table = {k[len(PREFIX):]: v for k, v in state.items() if k.startswith(PREFIX)}
    rest = {k: v for k, v in state.items() if not k.startswith(PREFIX)}
    return rest, table


__all__ = ["ClassEmbedding", "PREFIX", "split_class_embedding"]
