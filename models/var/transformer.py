"""VAR transformer: class-conditional next-scale prediction with AdaLN blocks.

Module and parameter names follow the reference state dict, so the official ``var_d*.pth`` files
load unchanged: ``word_embed``, ``class_emb``, ``pos_start``, ``pos_1LC``, ``lvl_embed``,
``shared_ada_lin`` (d36), ``blocks.N.{attn.{mat_qkv,q_bias,v_bias,zero_k_bias,scale_mul_1H11,proj},
ffn.{fc1,fc2}, ada_lin | ada_gss}``, ``head_nm.ada_lin``, ``head`` and the buffer ``lvl_1L`` (each
token's scale index). The official files also store ``attn_bias_for_masking``, the block-causal
training mask (−inf above the block diagonal): it follows from ``lvl_1L``, so the loader checks it
and drops it (the finiteness check of every loaded weight would refuse its −inf) and ``forward``
builds it from ``lvl_1L``.

Block (words): from the class embedding an AdaLN gives γ1, γ2, scale1, scale2, shift1, shift2 (in
that order); x += γ1·Attn(LN(x)(1 + scale1) + shift1); x += γ2·FFN(LN(x)(1 + scale2) + shift2);
LayerNorm without affine. Attention: q/k/v from one projection with bias (q_bias, 0, v_bias); with
l2 normalisation q and k are unit vectors and q is scaled by exp(min(scale_mul, ln 100)) per head,
softmax scale 1; otherwise softmax scale 0.25/√head_dim. FFN: GELU(tanh). Head: AdaLN (SiLU →
Linear to scale, shift) on the LayerNorm, then Linear to the vocabulary.
Source: FoundationVision/VAR ``models/var.py``, ``models/basic_var.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import ConfigError, SamplingError
from .config import VARConfig

if TYPE_CHECKING:  # the pair imports this module
    from .session import VARPair

_MAX_SCALE_MUL = float(torch.log(torch.tensor(100.0)))  # the reference's clamp of the learned log-scale


@dataclass
class VARCondition:
    """Class ids (B,) to generate, one image per id."""

    labels: torch.Tensor

    @property
    def batch_size(self) -> int:
        return int(torch.as_tensor(self.labels).reshape(-1).shape[0])


class SelfAttention(nn.Module):
    def __init__(self, cfg: VARConfig):
        super().__init__()
        c, heads = cfg.embed_dim, cfg.num_heads
        self.num_heads, self.head_dim, self.l2_norm = heads, cfg.head_dim, cfg.attn_l2_norm
        if self.l2_norm:
            self.scale = 1.0
            self.scale_mul_1H11 = nn.Parameter(torch.full((1, heads, 1, 1), 4.0).log())
        else:
            self.scale = 0.25 / cfg.head_dim ** 0.5
        self.mat_qkv = nn.Linear(c, 3 * c, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(c))
        self.v_bias = nn.Parameter(torch.zeros(c))
        self.register_buffer("zero_k_bias", torch.zeros(c))
        self.proj = nn.Linear(c, c)

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor | None = None,
                cache: tuple[torch.Tensor, torch.Tensor] | None = None, start: int = 0) -> torch.Tensor:
        """x (B, L, C). With ``cache`` = (k, v) buffers (B, H, L_max, head_dim) the new keys and values
        are written at ``start`` and the queries attend to every cached position before ``start + L``
        (a scale sees itself and all coarser scales, as the reference's inference)."""
        b, length, c = x.shape
        bias = torch.cat((self.q_bias, self.zero_k_bias, self.v_bias))
        qkv = F.linear(x, self.mat_qkv.weight, bias).view(b, length, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, L, hd)
        if self.l2_norm:
            scale_mul = self.scale_mul_1H11.clamp_max(_MAX_SCALE_MUL).exp()
            q = F.normalize(q, dim=-1).mul(scale_mul)
            k = F.normalize(k, dim=-1)
        if cache is not None:
            end = start + length
            cache[0][:, :, start:end] = k
            cache[1][:, :, start:end] = v
            k, v = cache[0][:, :, :end], cache[1][:, :, :end]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(b, length, c))


class FFN(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SharedAdaLin(nn.Linear):
    """d36's one AdaLN projection for every block: (B, D) → (B, 1, 6, C)."""

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        return super().forward(cond).view(-1, 1, 6, self.weight.shape[0] // 6)


class AdaLNSelfAttn(nn.Module):
    def __init__(self, cfg: VARConfig):
        super().__init__()
        c = cfg.embed_dim
        self.embed_dim = c
        self.attn = SelfAttention(cfg)
        self.ffn = FFN(c, cfg.mlp_hidden)
        self.ln_wo_grad = nn.LayerNorm(c, eps=cfg.norm_eps, elementwise_affine=False)
        self.shared_aln = cfg.shared_aln
        if self.shared_aln:
            self.ada_gss = nn.Parameter(torch.zeros(1, 1, 6, c))
        else:
            self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(c, 6 * c))

    def modulation(self, cond: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(γ1, γ2, scale1, scale2, shift1, shift2), each (B, 1, C), from the class embedding
        (or, with the shared AdaLN, from the shared projection's (B, 1, 6, C))."""
        if self.shared_aln:
            return (self.ada_gss + cond).unbind(2)
        return self.ada_lin(cond).view(-1, 1, 6, self.embed_dim).unbind(2)

    def forward(self, x: torch.Tensor, mod: tuple[torch.Tensor, ...], attn_bias: torch.Tensor | None = None,
                cache=None, start: int = 0) -> torch.Tensor:
        gamma1, gamma2, scale1, scale2, shift1, shift2 = mod
        h = self.attn(self.ln_wo_grad(x).mul(scale1.add(1)).add_(shift1), attn_bias, cache, start)
        x = x + h.mul_(gamma1)
        return x + self.ffn(self.ln_wo_grad(x).mul(scale2.add(1)).add_(shift2)).mul(gamma2)


class AdaLNBeforeHead(nn.Module):
    def __init__(self, cfg: VARConfig):
        super().__init__()
        c = cfg.embed_dim
        self.embed_dim = c
        self.ln_wo_grad = nn.LayerNorm(c, eps=cfg.norm_eps, elementwise_affine=False)
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(c, 2 * c))

    def modulation(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.ada_lin(cond).view(-1, 1, 2, self.embed_dim).unbind(2)

    def forward(self, x: torch.Tensor, mod: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        scale, shift = mod
        return self.ln_wo_grad(x).mul(scale.add(1)).add_(shift)


def scale_index(patch_nums) -> torch.Tensor:
    """Each token's scale index (L,), int64: the reference's ``lvl_1L`` row."""
    return torch.cat([torch.full((p * p,), i, dtype=torch.long) for i, p in enumerate(patch_nums)])


def block_causal_mask(levels: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The additive mask (1, 1, L, L) of teacher-forced training: token q sees key k iff level(k) ≤ level(q)
    (the reference's ``attn_bias_for_masking``)."""
    d = levels.reshape(1, -1, 1)
    zero = torch.zeros((), dtype=dtype, device=levels.device)
    return torch.where(d >= d.transpose(1, 2), zero, -torch.inf).unsqueeze(1)


class VARTransformer(nn.Module):
    """The VAR transformer (any depth; d16 … d30 at 256 px, d36 with the shared AdaLN at 512 px)."""

    def __init__(self, config: VARConfig):
        super().__init__()
        self.config = config
        c, cfg = config.embed_dim, config
        first_l = cfg.patch_nums[0] ** 2
        self.word_embed = nn.Linear(cfg.cvae, c)
        self.class_emb = nn.Embedding(cfg.num_classes + 1, c)  # row num_classes: the CFG null class
        self.pos_start = nn.Parameter(torch.zeros(1, first_l, c))
        self.pos_1LC = nn.Parameter(torch.zeros(1, cfg.num_tokens, c))
        self.lvl_embed = nn.Embedding(len(cfg.patch_nums), c)
        if cfg.shared_aln:
            self.shared_ada_lin = nn.Sequential(nn.SiLU(), SharedAdaLin(c, 6 * c))
        self.blocks = nn.ModuleList(AdaLNSelfAttn(cfg) for _ in range(cfg.depth))
        self.register_buffer("lvl_1L", scale_index(cfg.patch_nums)[None])
        self.head_nm = AdaLNBeforeHead(cfg)
        self.head = nn.Linear(c, cfg.vocab_size)

    # -- sizes ---------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def num_image_tokens(self) -> int:
        return self.config.num_tokens

    @property
    def token_layout(self) -> tuple[tuple[int, int], ...]:
        """The token maps in storage order, coarse to fine (see samplers.layout.TokenLayout)."""
        return self.config.scales

    @property
    def image_size(self) -> int:
        return self.config.image_size

    @property
    def dtype(self) -> torch.dtype:
        return self.word_embed.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.word_embed.weight.device

    # -- pieces shared by the session and the teacher-forced forward ----------------------------
    def class_embedding(self, labels: torch.Tensor, guidance: bool, allow_null: bool = False) -> torch.Tensor:
        """Class embeddings (B', C): the labels, then (with ``guidance``) as many null-class rows."""
        labels = torch.as_tensor(labels, device=self.device).long().reshape(-1)
        top = self.num_classes + int(allow_null)
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= top):
            raise SamplingError(f"Class id out of range: got {labels.tolist()}, the model knows "
                                f"0..{self.num_classes - 1}.")
        if guidance:
            labels = torch.cat((labels, torch.full_like(labels, self.num_classes)))
        return self.class_emb(labels)

    def modulations(self, cond: torch.Tensor) -> tuple[list[tuple[torch.Tensor, ...]], tuple[torch.Tensor, ...]]:
        """Every block's AdaLN terms and the head's, from class embeddings (B, C)."""
        shared = self.shared_ada_lin(cond) if self.config.shared_aln else cond
        return [blk.modulation(shared) for blk in self.blocks], self.head_nm.modulation(cond)

    def level_positions(self) -> torch.Tensor:
        """lvl_embed(scale of each token) + pos_1LC, (1, L, C)."""
        return self.lvl_embed(self.lvl_1L) + self.pos_1LC

    def logits(self, h: torch.Tensor, head_mod) -> torch.Tensor:
        """Hidden states (B, l, C) → float32 logits (B, l, V)."""
        x = self.head_nm(h.float(), head_mod)
        return self.head(x.to(self.head.weight.dtype)).float()

    # -- full-sequence forward (training, tests) ---------------------------------------------
    def forward(self, labels: torch.Tensor, x_wo_first: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, L, V) float32.

        ``x_wo_first`` (B, L − h0·w0, Cvae) is the VQ-VAE's next-scale input of every scale after the
        first (``MultiScaleQuantizer.tokens_to_var_input``); labels may hold the null class (label
        dropout for CFG training). The block-causal mask lets each scale see itself and coarser ones.
        """
        cfg = self.config
        cond = self.class_embedding(labels, guidance=False, allow_null=True)
        b, first_l = cond.shape[0], cfg.patch_nums[0] ** 2
        sos = cond.unsqueeze(1).expand(b, first_l, -1) + self.pos_start.expand(b, first_l, -1)
        x = torch.cat((sos, self.word_embed(x_wo_first.to(self.dtype))), dim=1)
        length = x.shape[1]
        x = x + (self.lvl_embed(self.lvl_1L[:, :length].expand(b, -1)) + self.pos_1LC[:, :length])
        mods, head_mod = self.modulations(cond)
        bias = block_causal_mask(self.lvl_1L[0, :length], x.dtype)
        for blk, mod in zip(self.blocks, mods):
            x = blk(x, mod, attn_bias=bias)
        return self.logits(x, head_mod)

    # -- sampling ------------------------------------------------------------------------------
    def bind(self, vqvae) -> "VARPair":
        """This transformer with its VQ-VAE: what the next-scale sampler drives."""
        from .session import VARPair

        return VARPair(self, vqvae)

    def check_vqvae(self, vqvae) -> None:
        """Raise ConfigError when the VQ-VAE's codebook or latent width is not this transformer's."""
        if vqvae.codebook_size != self.vocab_size or vqvae.z_channels != self.config.cvae:
            raise ConfigError(
                f"The VAR transformer predicts {self.vocab_size} token ids over a {self.config.cvae}-channel latent "
                f"but the VQ-VAE has {vqvae.codebook_size} codes of {vqvae.z_channels} channels: they were not trained "
                f"together. Pair the official var_d*.pth files with vae_ch160v4096z32.pth.")
