"""Cached decoding of a LlamaGen GPT: the model side of samplers.protocols.NextTokenSession.

A session owns a static KV cache sized for the condition plus every image
token. Positions 0..T-1 hold the condition, position T+k holds image token k.
It also owns classifier-free guidance: with guidance the cache holds the rows
``[cond_0..cond_{B-1}; uncond_0..uncond_{B-1}]`` (the null class, or the learned
null caption), every fed token goes to both halves, and the logits come back as
the pair (cond, uncond). ``extend`` appends tokens after each sample's own cached
length (samples may be at different lengths: ragged speculative decoding),
``truncate`` forgets image tokens past a point per sample, and attention only
ever reads the filled prefix of the cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch

from ...errors import SamplingError
from .masks import causal_mask_with_columns

if TYPE_CHECKING:  # the GPT builds sessions; the session only reads the GPT
    from .gpt import LlamaGenCondition, LlamaGenGPT

Logits = tuple[torch.Tensor, "torch.Tensor | None"]


class LlamaGenSession:
    """KV-cached decoding state for one batch (see samplers.protocols.NextTokenSession)."""

    def __init__(self, model: "LlamaGenGPT", cond: "LlamaGenCondition", guidance: bool, max_new_tokens: int):
        if max_new_tokens > model.num_image_tokens:
            raise SamplingError(f"Asked for {max_new_tokens} tokens but the model's grid holds "
                                f"{model.num_image_tokens}; lower the count or raise the image size.")
        self.model = model
        self.device = model.device
        self.guided = bool(guidance)
        self.batch_size = cond.batch_size
        self.rows = self.batch_size * (2 if guidance else 1)
        self.vocab_size = model.vocab_size
        self.num_image_tokens = model.num_image_tokens
        self._cond_emb, col_valid = model.condition_tokens(cond, guidance)
        self.num_condition = self._cond_emb.shape[1]
        # The last image token is never fed back, but SJD drafts may reach it.
        self.max_len = self.num_condition + max_new_tokens
        c = model.config
        shape = (c.n_layer, self.rows, c.kv_heads, self.max_len, c.head_dim)
        self._k = torch.zeros(shape, dtype=model.dtype, device=self.device)
        self._v = torch.zeros(shape, dtype=model.dtype, device=self.device)
        self._rope = model.rope_table()
        # Column validity over the whole cache (False only on padded caption slots).
        self._col_valid = None
        if col_valid is not None:
            self._col_valid = torch.ones(self.rows, self.max_len, dtype=torch.bool, device=self.device)
            self._col_valid[:, : self.num_condition] = col_valid
        self._causal = torch.ones(self.max_len, self.max_len, dtype=torch.bool, device=self.device).tril_()
        self._lengths = [0] * self.batch_size  # filled cache positions per sample (host side: no syncs)

    def cached_image_tokens(self) -> list[int]:
        """Image tokens currently in the cache, per sample."""
        return [max(0, n - self.num_condition) for n in self._lengths]

    @torch.no_grad()
    def prefill(self, all_positions: bool = False) -> Logits:
        """Run the condition; float32 logits (B, V) predicting image token 0 (cond, uncond or None).

        ``all_positions``: logits (B, T, V) at every condition position (parity tests).
        """
        h = self._cond_emb
        t = self.num_condition
        mask = None
        if self._col_valid is not None:
            mask = causal_mask_with_columns(t, 0, self._col_valid[:, :t], t, h.device)
        logits = self._run(h, 0, mask, causal=mask is None, last_only=not all_positions)
        self._lengths = [t] * self.batch_size
        return self._split(logits if all_positions else logits[:, -1])

    @torch.no_grad()
    def extend(self, tokens: torch.Tensor, last_only: bool = False) -> Logits:
        """Feed image tokens (B, L) after each sample's cached ones; float32 logits (B, L, V) per half.

        Row i of the result predicts the token that follows ``tokens[:, i]``. When the
        samples sit at different lengths, positions past the end of the cache (padding
        a sampler feeds to samples that are already done) land in its last slot, which
        holds the final image token and is never read by a valid position.
        """
        if not any(self._lengths):
            raise SamplingError("Call prefill() before extend().")
        length = tokens.shape[1]
        feed = torch.cat([tokens, tokens]) if self.guided else tokens
        h = self.model.tok_embeddings(feed)
        if len(set(self._lengths)) == 1:
            logits = self._extend_uniform(h, self._lengths[0], length, last_only)
        else:
            logits = self._extend_ragged(h, length, last_only)
        self._lengths = [min(n + length, self.max_len) for n in self._lengths]
        return self._split(logits)

    def truncate(self, num_image_tokens: int | Sequence[int]) -> None:
        """Keep only the first ``num_image_tokens`` image tokens in the cache (one count, or one per sample)."""
        counts = [int(num_image_tokens)] * self.batch_size if isinstance(num_image_tokens, int) else \
            [int(n) for n in num_image_tokens]
        keep = [self.num_condition + n for n in counts]
        if len(keep) != self.batch_size or any(k > n for k, n in zip(keep, self._lengths)):
            raise SamplingError(f"Cannot truncate to {counts} image tokens; cached: {self.cached_image_tokens()}.")
        self._lengths = keep

    def _extend_uniform(self, h: torch.Tensor, start: int, length: int, last_only: bool) -> torch.Tensor:
        end = start + length
        if end > self.max_len:
            raise SamplingError(f"Cannot extend by {length}: the cache holds {self.max_len} positions.")
        if length == 1 and self._col_valid is None:
            mask = None  # one query sees every cached column
        else:
            mask = self._causal[None, None, start:end, :end]
            if self._col_valid is not None:
                mask = mask & self._col_valid[:, None, None, :end]
        return self._run(h, start, mask, causal=False, last_only=last_only)

    def _extend_ragged(self, h: torch.Tensor, length: int, last_only: bool) -> torch.Tensor:
        starts = torch.tensor(self._lengths * (self.rows // self.batch_size), device=self.device)
        positions = (starts[:, None] + torch.arange(length, device=self.device)).clamp_(max=self.max_len - 1)
        end = min(max(self._lengths) + length, self.max_len)
        mask = (torch.arange(end, device=self.device) <= positions[..., None])[:, None]  # (rows, 1, L, end)
        if self._col_valid is not None:
            mask = mask & self._col_valid[:, None, None, :end]
        return self._run(h, positions, mask, causal=False, last_only=last_only, end=end)

    def _run(self, h: torch.Tensor, start: int | torch.Tensor, mask, causal: bool, last_only: bool,
             end: int | None = None) -> torch.Tensor:
        rope = self._rope[start] if isinstance(start, torch.Tensor) else self._rope[start:start + h.shape[1]]
        for i, layer in enumerate(self.model.layers):
            h = layer(h, rope, mask, (self._k[i], self._v[i]), start, causal, end)
        if last_only:
            h = h[:, -1:]
        return self.model.output(self.model.norm(h)).float()

    def _split(self, logits: torch.Tensor) -> Logits:
        if not self.guided:
            return logits, None
        return logits[: self.batch_size], logits[self.batch_size:]
