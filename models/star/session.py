"""Next-scale decoding of a STAR transformer with its VQ-VAE: the model side of
``samplers.protocols.ScaleSession`` (the same contract as ``models.var.session``).

``StarPair`` binds a transformer to VAR's VQ-VAE (its quantiser turns each committed scale into
the next scale's input). ``StarSession`` holds one batch's state: the text keys/values of every
block (computed once), a self-attention key/value cache sized for every token of every scale, and
the accumulated latent f̂. With guidance the rows are ``[prompt_0..prompt_{B-1}; empty_0..empty_{B-1}]``
(the empty prompt's features on the unconditional half, as the reference encodes
``prompts + [""]·B``), each scale's input goes to both halves, and logits come back as the pair
(cond, uncond).

    session = pair.start_session(StarCondition(states, mask, pooled, null_states, null_mask, null_pooled),
                                 guidance=True)
    logits = session.first()               # scale 0
    logits = session.next(tokens_0)        # commits scale 0, logits of scale 1
    ...
    session.commit(tokens_last)            # the last scale: f̂ is complete
    image = session.decode()               # (B, 3, H, W) in [-1, 1]

The order of operations is the reference's ``autoregressive_infer_cfg`` (without its optional
``w_mask`` sampler, which needs the star-1024-sampler weights); the KV cache is written in place
instead of concatenated (same values).
"""

from __future__ import annotations

from typing import Any

import torch

from ...errors import SamplingError
from ..var.vqvae import VARVQVAE
from .condition import StarCondition, as_condition
from .transformer import StarTransformer

Logits = tuple[torch.Tensor, "torch.Tensor | None"]


class StarPair:
    """A STAR transformer with its VQ-VAE: what ``samplers.next_scale.sample_next_scale`` drives."""

    def __init__(self, transformer: StarTransformer, vqvae: VARVQVAE):
        transformer.check_vqvae(vqvae)
        self.transformer, self.vqvae = transformer, vqvae

    @property
    def vocab_size(self) -> int:
        return self.transformer.vocab_size

    @property
    def token_layout(self) -> tuple[tuple[int, int], ...]:
        return self.transformer.token_layout

    @property
    def num_image_tokens(self) -> int:
        return self.transformer.num_image_tokens

    @property
    def device(self) -> torch.device:
        return self.transformer.device

    def start_session(self, cond: Any, guidance: bool) -> "StarSession":
        return StarSession(self.transformer, self.vqvae, as_condition(cond), guidance)

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens (B, L) of every scale → images (B, 3, H, W) float32 in [−1, 1]."""
        return self.vqvae.decode_tokens(tokens, self.token_layout)


class StarSession:
    """One batch's next-scale decoding state (see samplers.protocols.ScaleSession).

    Raises SamplingError for mis-shaped text features, a mask row without tokens, or guidance
    without the empty prompt's features.
    """

    def __init__(self, model: StarTransformer, vqvae: VARVQVAE, cond: StarCondition, guidance: bool):
        cfg = model.config
        self.model, self.vqvae = model, vqvae
        self.quantizer = vqvae.quantize
        self.device = model.device
        self.guided = bool(guidance)
        self.batch_size = cond.batch_size
        self.rows = self.batch_size * (2 if self.guided else 1)
        self.vocab_size = model.vocab_size
        self.scales = cfg.scales
        self._spans = cfg.begin_ends
        states, mask, pooled = cond.rows(self.guided)
        with torch.no_grad():
            self._text = model.text_kv(states, mask, prompts=self.batch_size)
            self._start = model.start_tokens(pooled)
        _, self._cos, self._sin = model.tables()
        shape = (self.rows, cfg.num_heads, cfg.num_tokens, cfg.head_dim)
        self._cache = [(torch.zeros(shape, dtype=model.dtype, device=self.device),
                        torch.zeros(shape, dtype=model.dtype, device=self.device)) for _ in range(cfg.depth)]
        self.f_hat = vqvae.quantize.new_fhat(self.batch_size, self.scales, self.device)
        self._next_input: torch.Tensor | None = None
        self._scale = -1  # the scale whose logits were returned last
        self.committed = 0  # scales whose tokens are in f̂

    @property
    def num_scales(self) -> int:
        return len(self.scales)

    @torch.no_grad()
    def first(self) -> Logits:
        """Logits (B, h0·w0, V) of the first scale (cond, uncond or None)."""
        if self._scale != -1:
            raise SamplingError("first() starts a session; call it once.")
        return self._forward(self._start, 0)

    @torch.no_grad()
    def commit(self, tokens: torch.Tensor) -> None:
        """Add the tokens (B, h·w) of the scale whose logits came last to f̂ (no forward pass)."""
        si = self._scale
        if si < 0 or self.committed != si:
            raise SamplingError("commit() takes the tokens of the scale whose logits were returned last, once.")
        size = self.scales[si]
        tokens = torch.as_tensor(tokens, device=self.device).long()
        if tuple(tokens.shape) != (self.batch_size, size[0] * size[1]):
            raise SamplingError(f"Scale {si} takes tokens of shape ({self.batch_size}, {size[0] * size[1]}); got "
                                f"{tuple(tokens.shape)}.")
        h = self.quantizer.embed(tokens, size)
        self._next_input = self.quantizer.add_scale(si, self.scales, self.f_hat, h)
        self.committed = si + 1

    @torch.no_grad()
    def next(self, tokens: torch.Tensor) -> Logits:
        """Commit scale k's tokens (B, h·w); logits (B, h'·w', V) of scale k + 1."""
        self.commit(tokens)
        si = self._scale + 1
        if si >= self.num_scales:
            raise SamplingError(f"All {self.num_scales} scales are decoded; call commit() for the last one.")
        x = self.model.scale_input(self._next_input.flatten(2).transpose(1, 2), si)
        if self.guided:
            x = x.repeat(2, 1, 1)
        return self._forward(x, si)

    @torch.no_grad()
    def decode(self) -> torch.Tensor:
        """The image of f̂ so far (B, 3, H, W), float32 in [−1, 1]; the final image once all scales are in."""
        return self.vqvae.fhat_to_image(self.f_hat)

    def _forward(self, x: torch.Tensor, si: int) -> Logits:
        begin, end = self._spans[si]
        rope = (self._cos[begin:end], self._sin[begin:end])
        for blk, text, cache in zip(self.model.blocks, self._text, self._cache):
            x = blk(x, text, rope, cache=cache, start=begin)
        logits = self.model.logits(x)
        self._scale = si
        if not self.guided:
            return logits, None
        return logits[: self.batch_size], logits[self.batch_size:]


__all__ = ["StarPair", "StarSession"]
