"""T5 encoder stack (the text half of T5), with the Hugging Face key names so official files load as is.

Keys: ``shared.weight``; per block ``encoder.block.N.layer.0.SelfAttention.{q,k,v,o}.weight``,
``...layer.0.layer_norm.weight``, ``...layer.1.DenseReluDense.{wi_0,wi_1,wo}.weight`` (or ``wi`` when
not gated), ``...layer.1.layer_norm.weight``; block 0 also holds the relative position bias table;
``encoder.final_layer_norm.weight``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import T5Config


class T5RMSNorm(nn.Module):
    """T5's layer norm: scale only, no mean subtraction, statistics in float32."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.float().pow(2).mean(-1, keepdim=True)
        return self.weight * (x.float() * torch.rsqrt(variance + self.eps)).to(self.weight.dtype)


def relative_position_buckets(length: int, num_buckets: int, max_distance: int, device) -> torch.Tensor:
    """Bucket id (L, L) of each (query, key) offset for bidirectional attention.

    Half the buckets are for keys after the query, half for keys before; within
    each half, small distances get a bucket each and larger ones share
    logarithmically wider buckets up to ``max_distance``.
    """
    offset = torch.arange(length, device=device)[None, :] - torch.arange(length, device=device)[:, None]
    half = num_buckets // 2
    buckets = (offset > 0).long() * half
    distance = offset.abs()
    exact = half // 2
    log_ratio = torch.log(distance.clamp(min=1).float() / exact) / math.log(max_distance / exact)
    far = (exact + (log_ratio * (half - exact)).long()).clamp(max=half - 1)
    return buckets + torch.where(distance < exact, distance, far)


class T5SelfAttention(nn.Module):
    """Multi-head self-attention without the 1/sqrt(d) scaling (T5 folds it into the weights)."""

    def __init__(self, c: T5Config, has_relative_bias: bool):
        super().__init__()
        self.num_heads, self.d_kv = c.num_heads, c.d_kv
        self.q = nn.Linear(c.d_model, c.inner_dim, bias=False)
        self.k = nn.Linear(c.d_model, c.inner_dim, bias=False)
        self.v = nn.Linear(c.d_model, c.inner_dim, bias=False)
        self.o = nn.Linear(c.inner_dim, c.d_model, bias=False)
        if has_relative_bias:
            self.relative_attention_bias = nn.Embedding(c.relative_buckets, c.num_heads)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, length, _ = x.shape

        def heads(t):
            return t.view(b, length, self.num_heads, self.d_kv).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(self.q(x)), heads(self.k(x)), heads(self.v(x)),
                                             attn_mask=bias.to(x.dtype), scale=1.0)
        return self.o(out.transpose(1, 2).reshape(b, length, -1))


class T5FeedForward(nn.Module):
    def __init__(self, c: T5Config):
        super().__init__()
        self.gated = c.gated
        if c.gated:
            self.wi_0 = nn.Linear(c.d_model, c.d_ff, bias=False)
            self.wi_1 = nn.Linear(c.d_model, c.d_ff, bias=False)
        else:
            self.wi = nn.Linear(c.d_model, c.d_ff, bias=False)
        self.wo = nn.Linear(c.d_ff, c.d_model, bias=False)
        self.act = F.relu if c.activation == "relu" else (lambda t: F.gelu(t, approximate="tanh"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.act(self.wi_0(x)) * self.wi_1(x) if self.gated else self.act(self.wi(x))
        return self.wo(hidden)


class _AttentionSublayer(nn.Module):
    def __init__(self, c: T5Config, has_relative_bias: bool):
        super().__init__()
        self.SelfAttention = T5SelfAttention(c, has_relative_bias)
        self.layer_norm = T5RMSNorm(c.d_model, c.eps)


class _FeedForwardSublayer(nn.Module):
    def __init__(self, c: T5Config):
        super().__init__()
        self.DenseReluDense = T5FeedForward(c)
        self.layer_norm = T5RMSNorm(c.d_model, c.eps)


class T5Block(nn.Module):
    """Pre-norm attention then pre-norm feed-forward, each with a residual."""

    def __init__(self, c: T5Config, has_relative_bias: bool):
        super().__init__()
        self.layer = nn.ModuleList([_AttentionSublayer(c, has_relative_bias), _FeedForwardSublayer(c)])

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        attn, ff = self.layer
        x = _clamp_fp16(x + attn.SelfAttention(attn.layer_norm(x), bias))
        return _clamp_fp16(x + ff.DenseReluDense(ff.layer_norm(x)))


def _clamp_fp16(x: torch.Tensor) -> torch.Tensor:
    # T5 activations outgrow fp16 in late layers; keep them finite as the reference does.
    if x.dtype == torch.float16:
        limit = torch.finfo(torch.float16).max - 1000
        return x.clamp(-limit, limit)
    return x


class _Stack(nn.Module):
    def __init__(self, c: T5Config):
        super().__init__()
        self.block = nn.ModuleList([T5Block(c, has_relative_bias=(i == 0)) for i in range(c.num_layers)])
        self.final_layer_norm = T5RMSNorm(c.d_model, c.eps)


class T5Encoder(nn.Module):
    """Token ids (B, L) + attention mask (B, L) → last hidden states (B, L, d_model)."""

    def __init__(self, config: T5Config):
        super().__init__()
        self.config = config
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = _Stack(config)

    @property
    def dtype(self) -> torch.dtype:
        return self.shared.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.shared.weight.device

    def attention_bias(self, length: int, mask: torch.Tensor | None) -> torch.Tensor:
        """Relative position bias (1|B, H, L, L), float32, with padded key columns pushed to -inf-ish."""
        c = self.config
        buckets = relative_position_buckets(length, c.relative_buckets, c.relative_max_distance, self.device)
        table = self.encoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight
        bias = table.float()[buckets].permute(2, 0, 1)[None]  # (1, H, L, L)
        if mask is not None:
            hidden = ~mask.to(self.device).bool()[:, None, None, :]
            bias = bias.masked_fill(hidden, torch.finfo(self.dtype).min)
        return bias

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        input_ids = input_ids.to(self.device)
        if int(input_ids.max()) >= self.config.vocab_size or int(input_ids.min()) < 0:
            raise ValueError(f"token ids must be in 0..{self.config.vocab_size - 1}")
        x = self.shared(input_ids)
        bias = self.attention_bias(input_ids.shape[1], attention_mask)
        for block in self.encoder.block:
            x = block(x, bias)
        return self.encoder.final_layer_norm(x)
