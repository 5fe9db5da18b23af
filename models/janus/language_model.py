"""The Llama decoder of Janus-Pro (transformers ``LlamaModel``), written on the pack's building blocks.

Grouped-query attention, rotary position embedding in Llama's rotate-half form (one position per token,
RoPE θ from the config), RMSNorm (``models.llamagen.gpt.RMSNorm``: float32 statistics, gain after the cast),
SwiGLU MLP. Parameter names follow the released state dicts (``embed_tokens``, ``layers.N.self_attn.{q,k,v,o}_proj``,
``layers.N.mlp.{gate,up,down}_proj``, ``layers.N.{input,post_attention}_layernorm``, ``norm``), so the
``language_model.model.`` part of the original release (and ``model.language_model.`` of the transformers one)
loads unchanged. The text ``lm_head`` is not part of it: image generation never uses it.

Every forward takes explicit per-row positions and writes keys/values into a caller-owned cache, so the
same code serves the prompt prefill, one-token steps, multi-token speculative steps and rows that sit at
different lengths (``session.py``). Reference: transformers ``LlamaModel`` / ``LlamaRotaryEmbedding`` /
``apply_rotary_pos_emb`` (as run by deepseek-ai/Janus ``generation_inference.py``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..llamagen.gpt import Linear, RMSNorm
from .config import JanusConfig


def rope_inv_freq(head_dim: int, theta: float, device=None) -> torch.Tensor:
    """Llama's inverse frequencies (head_dim/2,) float32: 1 / θ^(2i/head_dim)."""
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).float() / head_dim
    return 1.0 / (theta ** exponents)


def rope_cos_sin(positions: torch.Tensor, inv_freq: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """cos and sin (R, L, 1, head_dim) in ``dtype`` for integer positions (R, L): angles in float32, the two halves
    of each head repeating the same frequencies (Llama's layout)."""
    angles = positions.float()[..., None] * inv_freq  # (R, L, head_dim/2)
    both = torch.cat([angles, angles], dim=-1)[:, :, None, :]
    return both.cos().to(dtype), both.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (R, L, H, head_dim) by rotate-half RoPE: x·cos + rotate_half(x)·sin, in x's dtype."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class LlamaAttention(nn.Module):
    """Self-attention with ``num_heads`` query heads sharing ``num_kv_heads`` key/value heads."""

    def __init__(self, config: JanusConfig):
        super().__init__()
        self.num_heads, self.num_kv, self.head_dim = config.num_heads, config.num_kv_heads, config.head_dim
        bias = config.attention_bias
        self.q_proj = Linear(config.hidden_size, self.num_heads * self.head_dim, bias=bias)
        self.k_proj = Linear(config.hidden_size, self.num_kv * self.head_dim, bias=bias)
        self.v_proj = Linear(config.hidden_size, self.num_kv * self.head_dim, bias=bias)
        self.o_proj = Linear(self.num_heads * self.head_dim, config.hidden_size, bias=bias)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor],
                columns: slice | torch.Tensor, end: int, mask: torch.Tensor | None, causal: bool) -> torch.Tensor:
        """x (R, L, hidden) → (R, L, hidden).

        New keys/values go to ``cache`` = (k, v), each (R, num_kv, S, head_dim), at ``columns``: a slice shared
        by every row, or (R, L) int64 column indices per row. Attention then reads columns 0..end-1; ``mask``
        (bool, broadcastable to (R, 1, L, end), True = may attend) hides what a row must not see; ``causal``
        with no mask is the plain causal mask of a prefill that starts at column 0.
        """
        rows, length, _ = x.shape
        q = apply_rope(self.q_proj(x).view(rows, length, self.num_heads, self.head_dim), cos, sin).transpose(1, 2)
        k = apply_rope(self.k_proj(x).view(rows, length, self.num_kv, self.head_dim), cos, sin)
        v = self.v_proj(x).view(rows, length, self.num_kv, self.head_dim)
        k_buf, v_buf = cache
        if isinstance(columns, slice):
            k_buf[:, :, columns] = k.transpose(1, 2)
            v_buf[:, :, columns] = v.transpose(1, 2)
        else:
            index = torch.arange(rows, device=x.device)[:, None]
            k_buf[index, :, columns] = k
            v_buf[index, :, columns] = v
        k, v = k_buf[:, :, :end], v_buf[:, :, :end]
        if self.num_kv != self.num_heads:
            k = k.repeat_interleave(self.num_heads // self.num_kv, dim=1)
            v = v.repeat_interleave(self.num_heads // self.num_kv, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None)
        return self.o_proj(out.transpose(1, 2).reshape(rows, length, self.num_heads * self.head_dim))


class LlamaMLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) · up(x))."""

    def __init__(self, config: JanusConfig):
        super().__init__()
        bias = config.mlp_bias
        self.gate_proj = Linear(config.hidden_size, config.intermediate_size, bias=bias)
        self.up_proj = Linear(config.hidden_size, config.intermediate_size, bias=bias)
        self.down_proj = Linear(config.intermediate_size, config.hidden_size, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then + mlp(norm(·))."""

    def __init__(self, config: JanusConfig):
        super().__init__()
        self.self_attn = LlamaAttention(config)
        self.mlp = LlamaMLP(config)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, x, cos, sin, cache, columns, end, mask, causal):
        h = x + self.self_attn(self.input_layernorm(x), cos, sin, cache, columns, end, mask, causal)
        return h + self.mlp(self.post_attention_layernorm(h))


class LlamaDecoder(nn.Module):
    """Token embedding, ``num_layers`` decoder layers and the final RMSNorm (no output head)."""

    def __init__(self, config: JanusConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.text_vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(LlamaDecoderLayer(config) for _ in range(config.num_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self._inv_freq: dict[str, torch.Tensor] = {}

    def inv_freq(self, device: torch.device) -> torch.Tensor:
        """RoPE inverse frequencies on ``device`` (cached; never part of the state dict)."""
        key = str(device)
        if key not in self._inv_freq:
            self._inv_freq[key] = rope_inv_freq(self.config.head_dim, self.config.rope_theta, device)
        return self._inv_freq[key]

    def new_cache(self, rows: int, length: int, dtype: torch.dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Empty key and value buffers, each (num_layers, rows, num_kv_heads, length, head_dim)."""
        c = self.config
        shape = (c.num_layers, rows, c.num_kv_heads, length, c.head_dim)
        return torch.zeros(shape, dtype=dtype, device=device), torch.zeros(shape, dtype=dtype, device=device)

    def forward(self, h: torch.Tensor, positions: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor],
                columns: slice | torch.Tensor, end: int, mask: torch.Tensor | None = None,
                causal: bool = False) -> torch.Tensor:
        """Input embeddings h (R, L, hidden) at RoPE ``positions`` (R, L) int64 → normed hidden states (R, L, hidden).

        ``cache`` = (k, v) from ``new_cache``; ``columns``, ``end``, ``mask`` and ``causal`` as in
        ``LlamaAttention.forward``.
        """
        cos, sin = rope_cos_sin(positions, self.inv_freq(h.device), h.dtype)
        k_all, v_all = cache
        for i, layer in enumerate(self.layers):
            h = layer(h, cos, sin, (k_all[i], v_all[i]), columns, end, mask, causal)
        return self.norm(h)
