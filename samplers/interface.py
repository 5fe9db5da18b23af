"""The contract between samplers and model families.

Samplers never touch a model's internals: they start a session for a batch of
conditions and then only prefill, extend and truncate it. Any family that
provides these (LlamaGen now; others later) works with every sampler.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch


class DecodeSession(Protocol):
    """KV-cached decoding state of one batch.

    With guidance the rows are laid out ``[cond_0..cond_{B-1}; uncond_0..uncond_{B-1}]``
    (``rows == 2 * batch_size``) and the sampler feeds the same token to both halves.
    """

    batch_size: int
    rows: int
    guided: bool
    vocab_size: int
    num_image_tokens: int

    @property
    def image_tokens_cached(self) -> int:
        """Image tokens currently in the cache."""

    def prefill(self) -> torch.Tensor:
        """Run the condition; float32 logits (rows, V) for image token 0."""

    def extend(self, tokens: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """Append tokens (rows, L); float32 logits (rows, L, V), row i predicting the next token."""

    def truncate(self, num_image_tokens: int) -> None:
        """Forget cached image tokens beyond the first ``num_image_tokens``."""


class ARModel(Protocol):
    """A next-token image model that can open decoding sessions."""

    vocab_size: int
    num_image_tokens: int

    def start_session(self, cond: Any, guidance: bool, max_new_tokens: int | None = None) -> DecodeSession:
        """Open a session for the batch described by ``cond`` (family-specific)."""
