"""Cached decoding of a LlamaGen GPT: the model side of the sampler interface.

A session owns a static KV cache sized for the condition plus every image
token. Positions 0..T-1 hold the condition, position T+k holds image token k.
``extend`` appends tokens, ``truncate`` forgets image tokens past a point (what
speculative decoding needs after a rejection), and attention only ever reads
the filled prefix of the cache.
"""

from __future__ import annotations

import torch

from ...errors import SamplingError
from .gpt import LlamaGenCondition, LlamaGenGPT, causal_mask_with_columns


class LlamaGenSession:
    """KV-cached decoding state for one batch (see samplers.interface.DecodeSession)."""

    def __init__(self, model: LlamaGenGPT, cond: LlamaGenCondition, guidance: bool, max_new_tokens: int):
        if max_new_tokens > model.num_image_tokens:
            raise SamplingError(f"Asked for {max_new_tokens} tokens but the model's grid holds "
                                f"{model.num_image_tokens}; lower the count or raise the image size.")
        self.model = model
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
        self._k = torch.zeros(shape, dtype=model.dtype, device=model.device)
        self._v = torch.zeros(shape, dtype=model.dtype, device=model.device)
        self._rope = model.rope_table()
        # Column validity over the whole cache (False only on padded caption slots).
        self._col_valid = None
        if col_valid is not None:
            self._col_valid = torch.ones(self.rows, self.max_len, dtype=torch.bool, device=model.device)
            self._col_valid[:, : self.num_condition] = col_valid
        self._causal = torch.ones(self.max_len, self.max_len, dtype=torch.bool, device=model.device).tril_()
        self.length = 0  # filled cache positions

    @property
    def image_tokens_cached(self) -> int:
        """Image tokens currently in the cache."""
        return max(0, self.length - self.num_condition)

    @torch.no_grad()
    def prefill(self, all_positions: bool = False) -> torch.Tensor:
        """Run the condition; logits (rows, V) predicting image token 0 (or (rows, T, V))."""
        self.length = 0
        h = self._cond_emb
        t = self.num_condition
        mask = None
        if self._col_valid is not None:
            mask = causal_mask_with_columns(t, 0, self._col_valid[:, :t], t, h.device)
        logits = self._run(h, 0, mask, causal=mask is None, last_only=not all_positions)
        return logits if all_positions else logits[:, -1]

    @torch.no_grad()
    def extend(self, tokens: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """Feed ``tokens`` (rows, L) after the cached ones; logits (rows, L, V), float32.

        Row i of the result predicts the token that follows ``tokens[:, i]``.
        """
        if self.length == 0:
            raise SamplingError("Call prefill() before extend().")
        length = tokens.shape[1]
        start = self.length
        if start + length > self.max_len:
            raise SamplingError(f"Cannot extend by {length}: the cache holds {self.max_len} positions.")
        end = start + length
        if length == 1 and self._col_valid is None:
            mask = None  # one query sees every cached column
        else:
            mask = self._causal[None, None, start:end, :end]
            if self._col_valid is not None:
                mask = mask & self._col_valid[:, None, None, :end]
        h = self.model.tok_embeddings(tokens)
        return self._run(h, start, mask, causal=False, last_only=last_only)

    def truncate(self, num_image_tokens: int) -> None:
        """Keep only the first ``num_image_tokens`` image tokens in the cache."""
        keep = self.num_condition + int(num_image_tokens)
        if keep > self.length:
            raise SamplingError(f"Cannot truncate to {num_image_tokens} image tokens; only "
                                f"{self.image_tokens_cached} are cached.")
        self.length = keep

    def _run(self, h: torch.Tensor, start: int, mask, causal: bool, last_only: bool) -> torch.Tensor:
        end = start + h.shape[1]
        rope = self._rope[start:end]
        for i, layer in enumerate(self.model.layers):
            h = layer(h, rope, mask, (self._k[i], self._v[i]), start, causal)
        self.length = end
        if last_only:
            h = h[:, -1:]
        return self.model.output(self.model.norm(h)).float()
