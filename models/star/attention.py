"""STAR's two attentions: self-attention with 2-D RoPE, and cross-attention to the text.

Both are l2-normalised as in VAR: q and k become unit vectors per head, q is multiplied by
exp(min(scale_mul, ln 100)) (a learned per-head scale, ``scale_mul_1H11``), softmax scale 1. The
parameter names are the reference's, so official state dicts load unchanged:

- self (``blocks.N.attn``): VAR's ``mat_qkv`` (no bias) with the bias (q_bias, zero_k_bias,
  v_bias), ``proj``; RoPE rotates q and k before the normalisation;
- cross (``blocks.N.cross_attn``): ``mat_q`` (width → width, bias q_bias) on the image tokens,
  ``mat_kv`` (text width → 2·width, bias (zero_k_bias, v_bias)) on the text hidden states, ``proj``;
  no RoPE; the text's padding is masked with −inf (``text_mask_bias``).

Source: Davinci-XLab/STAR-T2I ``models/basic_var.py`` (``Attention``), ``models/var_drop.py``
(``prepare_attn_mask``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import SamplingError
from ..var.transformer import SelfAttention
from .config import StarConfig
from .rope import apply_rope

_MAX_SCALE_MUL = float(torch.log(torch.tensor(100.0)))  # the reference's clamp of the learned log-scale


def text_mask_bias(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The additive cross-attention mask (B, 1, 1, T): 0 where ``mask`` (B, T) is 1, −inf where it is 0.

    Raises SamplingError when the mask holds other values, or when a row has no token at all (its
    attention would be undefined: the reference's softmax gives NaN there).
    """
    if mask.dim() != 2:
        raise SamplingError(f"The text attention mask must be (batch, tokens); got shape {tuple(mask.shape)}.")
    valid = mask == 1
    if not bool((valid | (mask == 0)).all()):
        raise SamplingError("The text attention mask must hold only 0 (padding) and 1 (token).")
    if not bool(valid.any(dim=1).all()):
        raise SamplingError("A text attention mask row has no token; every prompt (the empty one included) has at "
                            "least the start and end tokens.")
    zero = torch.zeros((), dtype=dtype, device=mask.device)
    return torch.where(valid, zero, -torch.inf).to(dtype)[:, None, None, :]


def _unit_scaled(module: nn.Module, q: torch.Tensor, k: torch.Tensor, dtype: torch.dtype):
    """l2-normalise q and k per head; q times the learned scale (the reference's order)."""
    scale_mul = module.scale_mul_1H11.clamp_max(_MAX_SCALE_MUL).exp()
    return F.normalize(q, dim=-1).mul(scale_mul).to(dtype), F.normalize(k, dim=-1).to(dtype)


class RopeSelfAttention(SelfAttention):
    """VAR's l2-normalised self-attention (same parameters, built from a StarConfig) with STAR's RoPE on q and k."""

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], attn_bias: torch.Tensor | None = None,
                cache: tuple[torch.Tensor, torch.Tensor] | None = None, start: int = 0) -> torch.Tensor:
        """x (B, l, C); ``rope`` = (cos, sin) of these l tokens (l, head_dim / 2).

        With ``cache`` = (k, v) buffers (B, H, L_max, head_dim) the rotated, normalised keys and the
        values are written at ``start`` and the queries see every cached position before
        ``start + l`` (as the reference's KV-cached inference); otherwise ``attn_bias`` masks.
        """
        b, length, c = x.shape
        bias = torch.cat((self.q_bias, self.zero_k_bias, self.v_bias))
        qkv = F.linear(x, self.mat_qkv.weight, bias).view(b, length, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, l, hd)
        q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        q, k = _unit_scaled(self, q, k, v.dtype)
        if cache is not None:
            end = start + length
            cache[0][:, :, start:end] = k
            cache[1][:, :, start:end] = v
            k, v = cache[0][:, :, :end], cache[1][:, :, :end]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(b, length, c))


class TextKV(NamedTuple):
    """One block's keys and values of the text (B, H, T, head_dim), normalised, and the mask bias (B, 1, 1, T)."""

    k: torch.Tensor
    v: torch.Tensor
    bias: torch.Tensor


class CrossAttention(nn.Module):
    """Image tokens (queries) attend to the text hidden states (keys, values), padding masked."""

    def __init__(self, cfg: StarConfig):
        super().__init__()
        c, heads = cfg.embed_dim, cfg.num_heads
        self.num_heads, self.head_dim, self.scale = heads, cfg.head_dim, 1.0
        self.scale_mul_1H11 = nn.Parameter(torch.full((1, heads, 1, 1), 4.0).log())
        self.mat_q = nn.Linear(c, c, bias=False)
        self.mat_kv = nn.Linear(cfg.text_dim, 2 * c, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(c))
        self.v_bias = nn.Parameter(torch.zeros(c))
        self.register_buffer("zero_k_bias", torch.zeros(c))
        self.proj = nn.Linear(c, c)

    def text_kv(self, states: torch.Tensor, bias: torch.Tensor) -> TextKV:
        """Text hidden states (B, T, D) and their mask bias (B, 1, 1, T) → this block's TextKV.

        The keys are normalised here once (they are the same for every scale).
        """
        b, length, _ = states.shape
        kv = F.linear(states, self.mat_kv.weight, torch.cat((self.zero_k_bias, self.v_bias)))
        k, v = kv.view(b, length, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        return TextKV(F.normalize(k, dim=-1).to(v.dtype), v, bias.to(v.dtype))

    def forward(self, x: torch.Tensor, text: TextKV) -> torch.Tensor:
        """x (B, l, C) with the text of the same B rows → (B, l, C)."""
        b, length, c = x.shape
        q = F.linear(x, self.mat_q.weight, self.q_bias).view(b, length, self.num_heads, self.head_dim).transpose(1, 2)
        scale_mul = self.scale_mul_1H11.clamp_max(_MAX_SCALE_MUL).exp()
        q = F.normalize(q, dim=-1).mul(scale_mul).to(text.v.dtype)
        out = F.scaled_dot_product_attention(q, text.k, text.v, attn_mask=text.bias, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(b, length, c))


__all__ = ["text_mask_bias", "RopeSelfAttention", "CrossAttention", "TextKV"]
