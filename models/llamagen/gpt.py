"""LlamaGen GPT: a Llama-style decoder over VQ image tokens.

Module and parameter names follow the reference state dict exactly, so the
official checkpoints load unchanged: ``cls_embedding``, ``tok_embeddings``,
``layers.N.{attention.{wqkv,wo}, feed_forward.{w1,w2,w3}, attention_norm, ffn_norm}``,
``norm``, ``output``. Sampling goes through ``start_session`` (see session.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import SamplingError
from .config import GPTConfig
from .masks import causal_mask_with_columns
from .rope import apply_rope, rope_table_2d
from .session import LlamaGenSession


@dataclass
class LlamaGenCondition:
    """What a LlamaGen GPT is conditioned on.

    Class-to-image: ``labels`` (B,) class ids. Text-to-image: ``caption`` (B, T, C)
    left-padded text-encoder features with ``caption_mask`` (B, T), 1 = real token.
    """

    labels: torch.Tensor | None = None
    caption: torch.Tensor | None = None
    caption_mask: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return int((self.labels if self.labels is not None else self.caption).shape[0])


class Linear(nn.Linear):
    """nn.Linear (same parameters) with a faster CPU path for a handful of rows.

    CPU BLAS picks a slow GEMM kernel for x @ W.T with 2-4 rows (the decode step of
    one or two images with CFG); W @ x.T uses a matrix-vector-like kernel and reads
    the weights at close to memory bandwidth: GPT-B decode at batch 1 with CFG went
    from 80 to 44 ms/step on 2 cores. Same math; rounding differs in the last bits.
    """

    SMALL_ROWS = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        if x.device.type == "cpu" and 1 < rows <= self.SMALL_ROWS and self.bias is None:
            flat = x.reshape(rows, x.shape[-1])
            return (self.weight @ flat.t()).t().reshape(*x.shape[:-1], self.out_features)
        return super().forward(x)


class RMSNorm(nn.Module):
    """Root-mean-square norm, computed in float32 and cast back before the gain."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


class FeedForward(nn.Module):
    """SwiGLU MLP: w2(silu(w1 x) * w3 x)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w1 = Linear(dim, hidden, bias=False)
        self.w3 = Linear(dim, hidden, bias=False)
        self.w2 = Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Attention(nn.Module):
    """Multi-head attention with fused q/k/v projection and 2D RoPE."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.n_kv = config.kv_heads
        self.head_dim = config.head_dim
        self.wqkv = Linear(config.dim, (self.n_head + 2 * self.n_kv) * self.head_dim, bias=False)
        self.wo = Linear(config.dim, config.dim, bias=False)

    def forward(self, x: torch.Tensor, rope: torch.Tensor, mask: torch.Tensor | None,
                kv_cache: tuple[torch.Tensor, torch.Tensor] | None = None, start: int | torch.Tensor = 0,
                causal: bool = False, end: int | None = None) -> torch.Tensor:
        """x (B, L, dim) at positions start..start+L-1.

        With ``kv_cache`` = (k, v) buffers of shape (B, n_kv, S_max, head_dim) the new
        keys/values are written at those positions and attention runs over the
        filled prefix 0..start+L-1; unwritten cache columns are never read. ``start``
        may also be a (B, L) tensor of per-row positions (rows at different lengths);
        attention then reads columns 0..end-1 and ``mask`` must hide what a row may not see.
        """
        bsz, length, dim = x.shape
        kv_dim = self.n_kv * self.head_dim
        q, k, v = self.wqkv(x).split([dim, kv_dim, kv_dim], dim=-1)
        q = apply_rope(q.view(bsz, length, self.n_head, self.head_dim), rope).transpose(1, 2)
        k = apply_rope(k.view(bsz, length, self.n_kv, self.head_dim), rope).transpose(1, 2)
        v = v.view(bsz, length, self.n_kv, self.head_dim).transpose(1, 2)
        if kv_cache is not None:
            k_buf, v_buf = kv_cache
            if isinstance(start, torch.Tensor):  # per-row positions
                rows = torch.arange(bsz, device=x.device)[:, None]
                k_buf[rows, :, start] = k.transpose(1, 2)
                v_buf[rows, :, start] = v.transpose(1, 2)
            else:
                end = start + length
                k_buf[:, :, start:end] = k
                v_buf[:, :, start:end] = v
            k, v = k_buf[:, :, :end], v_buf[:, :, :end]
        if self.n_kv != self.n_head:
            k = k.repeat_interleave(self.n_head // self.n_kv, dim=1)
            v = v.repeat_interleave(self.n_head // self.n_kv, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None)
        return self.wo(out.transpose(1, 2).reshape(bsz, length, dim))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then + ffn(norm(.))."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.attention = Attention(config)
        self.feed_forward = FeedForward(config.dim, config.hidden)
        self.attention_norm = RMSNorm(config.dim, config.norm_eps)
        self.ffn_norm = RMSNorm(config.dim, config.norm_eps)

    def forward(self, x, rope, mask, kv_cache=None, start=0, causal=False, end=None):
        h = x + self.attention(self.attention_norm(x), rope, mask, kv_cache, start, causal, end)
        return h + self.feed_forward(self.ffn_norm(h))


class LabelEmbedder(nn.Module):
    """Class id → one condition token; row ``num_classes`` is the CFG null label."""

    def __init__(self, num_classes: int, dim: int, null_row: bool):
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + int(null_row), dim)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return self.embedding_table(labels).unsqueeze(1)


class CaptionProjection(nn.Module):
    """Linear → GELU(tanh) → Linear, no biases."""

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.fc1 = Linear(in_dim, dim, bias=False)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class CaptionEmbedder(nn.Module):
    """Text features → condition tokens; ``uncond_embedding`` is the learned null caption."""

    def __init__(self, caption_dim: int, dim: int, caption_tokens: int):
        super().__init__()
        self.cap_proj = CaptionProjection(caption_dim, dim)
        self.register_buffer("uncond_embedding", torch.zeros(caption_tokens, caption_dim))

    def forward(self, caption: torch.Tensor) -> torch.Tensor:
        return self.cap_proj(caption)


class LlamaGenGPT(nn.Module):
    """LlamaGen GPT for class-to-image (``c2i``) or text-to-image (``t2i``)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        if config.model_type == "c2i":
            self.cls_embedding = LabelEmbedder(config.num_classes, config.dim, config.class_null_row)
        else:
            self.cls_embedding = CaptionEmbedder(config.caption_dim, config.dim, config.caption_tokens)
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.dim)
        self.layers = nn.ModuleList(TransformerBlock(config) for _ in range(config.n_layer))
        self.norm = RMSNorm(config.dim, config.norm_eps)
        self.output = Linear(config.dim, config.vocab_size, bias=False)
        self._rope_cache: dict[tuple, torch.Tensor] = {}

    # -- sizes -------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def num_image_tokens(self) -> int:
        return self.config.num_image_tokens

    @property
    def grid_size(self) -> int:
        return self.config.grid_size

    @property
    def token_layout(self) -> tuple[tuple[int, int], ...]:
        """The token maps in storage order: one raster grid (see samplers.layout.TokenLayout)."""
        return ((self.config.grid_size, self.config.grid_size),)

    @property
    def dtype(self) -> torch.dtype:
        return self.tok_embeddings.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.tok_embeddings.weight.device

    def rope_table(self) -> torch.Tensor:
        """The 2D RoPE table for this config on the model's device (cached)."""
        c = self.config
        key = (c.grid_size, c.cls_token_num, str(self.device))
        if key not in self._rope_cache:
            self._rope_cache = {key: rope_table_2d(c.grid_size, c.head_dim, c.rope_base, c.cls_token_num, self.device)}
        return self._rope_cache[key]

    # -- conditions ----------------------------------------------------------------------
    def condition_tokens(self, cond: LlamaGenCondition, guidance: bool,
                         allow_null: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Condition embeddings (B', T, dim) and the column-validity mask (B', T) or None.

        With ``guidance`` the batch is [cond; uncond] (B' = 2B): the null class
        ``num_classes``, or the learned null caption with the prompt's own mask.
        ``allow_null`` accepts the null class id in ``labels`` (training with label dropout).
        """
        c = self.config
        if c.model_type == "c2i":
            if cond.labels is None:
                raise SamplingError("This is a class-to-image model: give class labels, not a text prompt.")
            labels = torch.as_tensor(cond.labels, device=self.device).long().reshape(-1)
            top = c.num_classes + int(allow_null and c.class_null_row)
            if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= top):
                raise SamplingError(f"Class id out of range: got {labels.tolist()}, the model knows 0..{c.num_classes - 1}.")
            if guidance:
                if not c.class_null_row:
                    raise SamplingError("This model has no null class, so it cannot use CFG; set cfg to 1.")
                labels = torch.cat([labels, torch.full_like(labels, c.num_classes)])
            return self.cls_embedding(labels)[:, : c.cls_token_num], None

        if cond.caption is None:
            raise SamplingError("This is a text-to-image model: give a text condition, not class labels.")
        caption = cond.caption.to(self.device, self.dtype)
        if caption.dim() != 3 or caption.shape[1] != c.cls_token_num or caption.shape[2] != c.caption_dim:
            raise SamplingError(f"Caption features must have shape (batch, {c.cls_token_num}, {c.caption_dim}); "
                                f"got {tuple(caption.shape)}. Check the text encoder (FLAN-T5-XL gives 2048).")
        mask = cond.caption_mask
        mask = None if mask is None else mask.to(self.device).bool().reshape(caption.shape[:2])
        if guidance:
            null = self.cls_embedding.uncond_embedding.to(self.dtype).expand_as(caption)
            caption = torch.cat([caption, null])
            mask = None if mask is None else torch.cat([mask, mask])
        if mask is not None and bool(mask.all()):
            mask = None
        return self.cls_embedding(caption)[:, : c.cls_token_num], mask

    # -- full-sequence forward (training, tests) ---------------------------------------
    def forward(self, cond: LlamaGenCondition, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, N, V) in float32: row k predicts ``tokens[:, k]``.

        Runs the condition plus tokens[:, :-1] in one causal pass (no cache). Class
        labels may hold the null id ``num_classes`` (label dropout for CFG training).
        """
        cond_emb, col_valid = self.condition_tokens(cond, guidance=False, allow_null=True)
        tok_emb = self.tok_embeddings(tokens[:, :-1])
        h = torch.cat([cond_emb, tok_emb], dim=1)
        length = h.shape[1]
        mask = None
        if col_valid is not None:
            mask = causal_mask_with_columns(length, 0, col_valid, length, h.device)
        rope = self.rope_table()[:length]
        for layer in self.layers:
            h = layer(h, rope, mask, causal=True)
        logits = self.output(self.norm(h[:, self.config.cls_token_num - 1:])).float()
        return logits

    def start_session(self, cond: LlamaGenCondition, guidance: bool, max_new_tokens: int | None = None):
        """Begin cached decoding for ``cond``: a LlamaGenSession (samplers.protocols.NextTokenSession)."""
        return LlamaGenSession(self, cond, guidance, max_new_tokens or self.num_image_tokens)
