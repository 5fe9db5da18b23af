"""Cached decoding of Janus-Pro: the model side of ``samplers.protocols.NextTokenSession``.

Rows. With guidance the session runs 2·B rows, interleaved as the reference lays them out (row 2b the
conditional prompt of sample b, row 2b + 1 its unconditional row, ``prompt.unconditional_ids``); without it
B conditional rows. Logits come back as the pair (cond, uncond) of (B, ..., V) float32 tensors: guidance
itself (``u + w·(c − u)``) is the sampler's.

Cache. One static KV cache per session, ``P + max_new_tokens`` columns, where P is the longest prompt of the
batch. Prompts of different lengths are left-padded: a padded row's first columns are masked out and its
RoPE positions start at 0 on its first real token, so every sample computes what it would alone (the
reference runs one prompt per call and needs neither). Column P + k holds image token k. ``extend`` appends
image tokens after each sample's cached ones (samples may sit at different lengths after a per-sample
``truncate``, as speculative Jacobi decoding leaves them) and ``truncate`` forgets image tokens past a point.

Reference: deepseek-ai/Janus ``generation_inference.py`` ``generate`` (prompt prefill with ``use_cache``,
then one ``prepare_gen_img_embeds`` token per row and step, ``gen_head`` on the last hidden state).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch

from ...errors import SamplingError
from .prompt import JanusCondition

if TYPE_CHECKING:  # the model builds sessions; the session only reads the model
    from .model import JanusGenerator

Logits = tuple[torch.Tensor, "torch.Tensor | None"]


class JanusSession:
    """KV-cached decoding state for one batch (see samplers.protocols.NextTokenSession)."""

    def __init__(self, model: "JanusGenerator", cond: JanusCondition, guidance: bool, max_new_tokens: int):
        if not isinstance(cond, JanusCondition):
            raise SamplingError(f"Janus-Pro is a text-to-image model: give it a text prompt, not "
                                f"{type(cond).__name__}.")
        c = model.config
        if not 1 <= max_new_tokens <= model.num_image_tokens:
            raise SamplingError(f"Asked for {max_new_tokens} tokens but the model's grid holds "
                                f"{model.num_image_tokens}; lower the count or raise the image size.")
        longest = max(cond.lengths)
        if longest + model.num_image_tokens > c.max_positions:
            raise SamplingError(f"The prompt is {longest} tokens long: with {model.num_image_tokens} image tokens it "
                                f"exceeds the model's context of {c.max_positions} positions; shorten the prompt or "
                                f"lower the image size.")
        self.model = model
        self.device = model.device
        self.guided = bool(guidance)
        self.batch_size = cond.batch_size
        self.per_sample = 2 if self.guided else 1
        self.rows = self.batch_size * self.per_sample
        self.vocab_size = model.vocab_size
        self.num_image_tokens = model.num_image_tokens
        self.prompt_length = longest
        self.max_len = longest + max_new_tokens
        rows_ids = []
        for ids, uncond in zip(cond.input_ids, cond.uncond_ids):
            rows_ids += [ids, uncond] if self.guided else [ids]
        if any(not 0 <= i < c.text_vocab_size for r in rows_ids for i in r):
            raise SamplingError(f"Prompt token ids must be in 0..{c.text_vocab_size - 1}: the condition was made with "
                                f"another tokenizer than this model's.")
        pads = [longest - len(r) for r in rows_ids]
        self.row_ids = torch.tensor([[0] * p + list(r) for p, r in zip(pads, rows_ids)], device=self.device)
        self._offset = torch.tensor(pads, device=self.device)  # RoPE position of column j = j − offset
        self._col_valid = None  # (rows, max_len) False on left-padding columns; None when no row is padded
        if any(pads):
            self._col_valid = torch.ones(self.rows, self.max_len, dtype=torch.bool, device=self.device)
            self._col_valid[:, :longest] = torch.arange(longest, device=self.device) >= self._offset[:, None]
        self._k, self._v = model.decoder.new_cache(self.rows, self.max_len, model.dtype, self.device)
        self._lengths = [0] * self.batch_size  # filled cache columns per sample (host side: no syncs)

    def cached_image_tokens(self) -> list[int]:
        """Image tokens currently in the cache, per sample."""
        return [max(0, n - self.prompt_length) for n in self._lengths]

    @torch.no_grad()
    def prefill(self) -> Logits:
        """Run the prompt rows; float32 logits (B, V) predicting image token 0 (cond, and uncond or None)."""
        length = self.prompt_length
        h = self.model.text_embeds(self.row_ids).to(self.model.dtype)
        columns = torch.arange(length, device=self.device)
        positions = (columns - self._offset[:, None]).clamp_(min=0)
        mask = None
        if self._col_valid is not None:  # causal, padding hidden, every query sees itself (no empty row)
            mask = (self._causal(0, length) & self._col_valid[:, None, None, :length]) | \
                torch.eye(length, dtype=torch.bool, device=self.device)
        hidden = self.model.decoder(h, positions, (self._k, self._v), slice(0, length), length, mask,
                                    causal=mask is None)
        self._lengths = [length] * self.batch_size
        return self._split(self.model.logits(hidden[:, -1]))

    @torch.no_grad()
    def extend(self, tokens: torch.Tensor, last_only: bool = False) -> Logits:
        """Feed image tokens (B, L) after each sample's cached ones; float32 logits (B, L, V) (or (B, 1, V)) per branch.

        Row i predicts the token that follows ``tokens[:, i]``. When samples sit at different lengths, positions
        past the end of the cache (padding a sampler feeds to samples that are already done) land in its last
        column, which only ever holds the final image token and is never read by a valid position.
        """
        if not any(self._lengths):
            raise SamplingError("Call prefill() before extend().")
        tokens = torch.as_tensor(tokens, device=self.device)
        if tokens.dim() != 2 or tokens.shape[0] != self.batch_size:
            raise SamplingError(f"extend() takes image tokens of shape ({self.batch_size}, length); got "
                                f"{tuple(tokens.shape)}.")
        length = tokens.shape[1]
        feed = tokens.repeat_interleave(self.per_sample, dim=0)
        h = self.model.image_embeds(feed).to(self.model.dtype)
        if len(set(self._lengths)) == 1:
            start = self._lengths[0]
            end = start + length
            if end > self.max_len:
                raise SamplingError(f"Cannot extend by {length}: the cache holds {self.max_len} positions.")
            columns: slice | torch.Tensor = slice(start, end)
            col_index = torch.arange(start, end, device=self.device).expand(self.rows, length)
            mask = None if length == 1 and self._col_valid is None else self._causal(start, end)
        else:
            starts = torch.tensor(self._lengths, device=self.device).repeat_interleave(self.per_sample)
            col_index = (starts[:, None] + torch.arange(length, device=self.device)).clamp_(max=self.max_len - 1)
            columns = col_index
            end = min(max(self._lengths) + length, self.max_len)
            mask = (torch.arange(end, device=self.device) <= col_index[..., None])[:, None]  # (rows, 1, L, end)
        if mask is not None and self._col_valid is not None:
            mask = mask & self._col_valid[:, None, None, :end]
        positions = col_index - self._offset[:, None]
        hidden = self.model.decoder(h, positions, (self._k, self._v), columns, end, mask)
        if last_only:
            hidden = hidden[:, -1:]
        self._lengths = [min(n + length, self.max_len) for n in self._lengths]
        return self._split(self.model.logits(hidden))

    def truncate(self, num_image_tokens: int | Sequence[int]) -> None:
        """Keep only the first ``num_image_tokens`` image tokens in the cache (one count, or one per sample)."""
        counts = [int(num_image_tokens)] * self.batch_size if isinstance(num_image_tokens, int) else \
            [int(n) for n in num_image_tokens]
        keep = [self.prompt_length + n for n in counts]
        if len(keep) != self.batch_size or any(n < 0 for n in counts) or \
                any(k > n for k, n in zip(keep, self._lengths)):
            raise SamplingError(f"Cannot truncate to {counts} image tokens; cached: {self.cached_image_tokens()}.")
        self._lengths = keep

    def _causal(self, start: int, end: int) -> torch.Tensor:
        """(1, 1, end − start, end) bool: query column q ∈ [start, end) sees key columns ≤ q."""
        keys = torch.arange(end, device=self.device)
        return (keys <= torch.arange(start, end, device=self.device)[:, None])[None, None]

    def _split(self, logits: torch.Tensor) -> Logits:
        if not self.guided:
            return logits, None
        return logits[0::2], logits[1::2]
