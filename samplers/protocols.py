"""The contracts between samplers and model families: one per decoding order.

Samplers never touch a model's internals. A family implements the protocol of
its decoding order (by duck typing: families never import the samplers) and the
sampler of that order drives it. Every length is counted in image tokens.

Guidance belongs to the model side: a session is told whether to guide and
returns logits as the pair ``(cond, uncond)`` (``uncond`` None without guidance),
each float32 of the same shape, so a family lays out or caches its unconditional
branch however its reference does (halves, interleaved rows, a separate cache).
The sampler only combines the pair (``logits.apply_cfg``).

- next-token (LlamaGen, Janus-Pro, Lumina-mGPT): ``NextTokenModel`` → ``NextTokenSession``;
- masked (MaskGIT, Meissonic): ``MaskedPredictor``, the whole grid re-predicted each step;
- next-scale (VAR, STAR): ``ScaleSession``, one token map per pass, coarse to fine; the
  session owns the tokenizer's quantiser that turns a committed scale into the next input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Protocol, Sequence

import torch


class GuidedLogits(NamedTuple):
    """Float32 logits of the conditional branch and of the unconditional one (None without guidance)."""

    cond: torch.Tensor
    uncond: torch.Tensor | None


class NextTokenSession(Protocol):
    """KV-cached decoding state of one batch of ``batch_size`` samples."""

    batch_size: int
    vocab_size: int
    num_image_tokens: int
    device: torch.device

    def prefill(self) -> GuidedLogits:
        """Run the condition; logits (B, V) for image token 0."""

    def extend(self, tokens: torch.Tensor, last_only: bool = False) -> GuidedLogits:
        """Append image tokens (B, L) after each sample's cached ones; logits (B, L, V) (or (B, 1, V)).

        Row i predicts the token after ``tokens[:, i]``. Samples may sit at different
        lengths (after a per-sample ``truncate``).
        """

    def truncate(self, num_image_tokens: int | Sequence[int]) -> None:
        """Keep the first ``num_image_tokens`` image tokens in the cache: one count, or one per sample."""


class NextTokenModel(Protocol):
    """A next-token family's model: what the next-token samplers need to start decoding."""

    vocab_size: int
    num_image_tokens: int
    device: torch.device

    def start_session(self, cond: Any, guidance: bool, max_new_tokens: int) -> NextTokenSession:
        ...


class MaskedPredictor(Protocol):
    """A bidirectional model that re-predicts every position of the grid (masked decoding)."""

    batch_size: int
    vocab_size: int
    num_image_tokens: int
    mask_id: int
    device: torch.device

    def predict(self, tokens: torch.Tensor, step: int, num_steps: int) -> GuidedLogits:
        """Tokens (B, N) with ``mask_id`` at unknown positions at step ``step`` (0-based) of ``num_steps`` →
        logits (B, N, V) (models conditioned on the step, such as Meissonic's timestep, read it; others ignore it)."""


class ScaleSession(Protocol):
    """Next-scale decoding state: one token map per pass, the session keeps the accumulated features."""

    batch_size: int
    vocab_size: int
    scales: tuple[tuple[int, int], ...]
    device: torch.device

    def first(self) -> GuidedLogits:
        """Logits (B, h0·w0, V) of the first scale."""

    def next(self, tokens: torch.Tensor) -> GuidedLogits:
        """Commit scale k's tokens (B, hk·wk); logits (B, h·w, V) of scale k + 1."""

    def commit(self, tokens: torch.Tensor) -> None:
        """Commit the last scale's tokens (no next scale to predict): the accumulated features are complete."""


@dataclass
class SamplingState:
    """What a sampler reports after each step (a forward pass, a masking step or a scale).

    ``tokens`` (B, N) int64 in the result's layout order; ``known`` (B, N) bool marks the
    tokens that are final so far (the rest are placeholders). ``done`` / ``total`` count
    progress in the order's own unit (tokens of the slowest sample, steps, scales).
    """

    done: int
    total: int
    tokens: torch.Tensor
    known: torch.Tensor


# callback(state); may raise to cancel. Called after every step with the current state.
StepCallback = Callable[[SamplingState], None]
