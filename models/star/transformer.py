"""STAR transformer: text-to-image next-scale prediction (VAR + cross-attention + 2-D RoPE).

Module and parameter names follow the reference state dict, so the official weights
(``ckpt["trainer"]["var_wo_ddp"]``) load with strict key checking: ``pos_start``, ``word_embed``,
``class_emb`` (a VAR leftover: stored, never used), ``lvl_embed``, ``blocks.N.attn.{scale_mul_1H11,
q_bias, v_bias, zero_k_bias, mat_qkv, proj}``, ``blocks.N.cross_attn.{scale_mul_1H11, q_bias, v_bias,
zero_k_bias, mat_kv, mat_q, proj}``, ``blocks.N.ffn.{fc1, fc2}``, ``head_logits``, ``encoder_proj``.
The reference keeps its scale index, training mask and RoPE table as plain attributes (not in the
state dict); they follow from the scale list and are rebuilt here.

Block (words; LN = LayerNorm without affine, eps 1e-6):
x += SelfAttn(LN(x)) (RoPE, l2-normalised); x += CrossAttn(LN(x), text); x += FFN(LN(x)) (GELU-tanh).
The reference's blocks have no AdaLN (its gammas are 1, scales and shifts 0). Input of the first
scale: encoder_proj(pooled text) + pos_start + lvl_embed(0); of scale k > 0: word_embed(f̂ area-
downsampled to scale k) + lvl_embed(k). Logits: head_logits(LN(h)) (the "logit norm"; without it,
head_logits(h)).

**Cross-attention over a batch.** The reference adds ``cross_attn(...)[0]`` to the block input: the
``[0]`` takes the first *row of the batch*, so every row — other prompts, and the unconditional
rows of guidance — receives row 0's cross-attention output (the other rows' text is computed and
discarded). Three modes (``StarConfig.cross_attn_mode``):

- ``"row0-broadcast"``: exactly the reference at any batch size (row 0 alone is computed).
- ``"per-prompt"`` (default): in a guided session each prompt's cross-attention output (queries from
  its conditional row) goes to its conditional and its unconditional row: exactly the reference run
  one prompt at a time (batch 1, the default of its ``sample.py`` and demo), for a batch of prompts.
  Without the cond/uncond halves (``forward``, unguided sessions) it is per-row.
- ``"per-row"``: every row its own text's output; the unconditional rows attend to the empty prompt
  (the usual classifier-free guidance).

Why per-prompt is the default: it is what the released sampling code computes for every prompt, so
images match the authors' for the same seed at any batch size. Nothing shows that the weights expect
per-row guidance: the reference's training ``forward`` has the same ``[0]`` (every row of a training
batch attended to row 0's text), so neither the released training nor the released sampling computes
the per-row form.

With one prompt and no guidance the three agree. With guidance the reference's unconditional row
sees the prompt's cross-attention, so its only unconditional input is the pooled empty prompt in the
start token; per-row changes exactly that.

Source: Davinci-XLab/STAR-T2I ``models/var_drop.py`` (``VAR.__init__``, ``forward``, ``get_logits``,
``autoregressive_infer_cfg``), ``models/basic_var.py`` (``AttnBlock``, ``Attention``, ``FFN``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from ...errors import ConfigError, SamplingError
from ..var.transformer import FFN, block_causal_mask, scale_index
from .attention import CrossAttention, RopeSelfAttention, TextKV, text_mask_bias
from .condition import check_text
from .config import StarConfig
from .rope import rope_table

if TYPE_CHECKING:  # the pair imports this module
    from .session import StarPair


class StarBlock(nn.Module):
    """Self-attention with RoPE, cross-attention to the text, FFN; each on a LayerNorm, each residual."""

    def __init__(self, cfg: StarConfig):
        super().__init__()
        self.attn = RopeSelfAttention(cfg)
        self.cross_attn = CrossAttention(cfg)
        self.ffn = FFN(cfg.embed_dim, cfg.mlp_hidden)
        self.ln_wo_grad = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps, elementwise_affine=False)

    def forward(self, x: torch.Tensor, text: TextKV, rope: tuple[torch.Tensor, torch.Tensor],
                attn_bias: torch.Tensor | None = None, cache=None, start: int = 0) -> torch.Tensor:
        """x (R, l, C) → (R, l, C), with ``text`` of n rows: n = R (each row its own text), n = 1 (row 0's
        output broadcast to every row) or R = k·n (the first n rows' outputs repeated k times: the
        per-prompt layout [cond…; uncond…]). The queries are always the first n rows."""
        x = x + self.attn(self.ln_wo_grad(x), rope, attn_bias, cache, start)
        rows, n = x.shape[0], text.k.shape[0]
        out = self.cross_attn(self.ln_wo_grad(x[:n]), text)
        if n not in (1, rows):
            out = out.repeat(rows // n, 1, 1)
        x = out + x
        return x + self.ffn(self.ln_wo_grad(x))


class StarTransformer(nn.Module):
    """The STAR transformer (d16 / d30 at 256, 512 or 1024 px, or any smaller configuration)."""

    def __init__(self, config: StarConfig):
        super().__init__()
        self.config = cfg = config
        c = cfg.embed_dim
        self.word_embed = nn.Linear(cfg.cvae, c)
        self.class_emb = nn.Embedding(cfg.num_classes + 1, c)  # stored by the reference, unused
        self.pos_start = nn.Parameter(torch.zeros(1, cfg.patch_nums[0] ** 2, c))
        self.lvl_embed = nn.Embedding(len(cfg.patch_nums), c)
        self.blocks = nn.ModuleList(StarBlock(cfg) for _ in range(cfg.depth))
        self.logit_norm = nn.LayerNorm(c, eps=cfg.norm_eps, elementwise_affine=False) if cfg.logit_norm else None
        self.head_logits = nn.Linear(c, cfg.vocab_size)
        self.encoder_proj = nn.Linear(cfg.text_dim, c)
        self._tables: dict = {}  # device → (levels, cos, sin); derived from the config, never saved

    # -- sizes ---------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

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
    def text_dim(self) -> int:
        return self.config.text_dim

    @property
    def dtype(self) -> torch.dtype:
        return self.word_embed.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.word_embed.weight.device

    # -- pieces shared by the session and the teacher-forced forward ----------------------------
    def tables(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(levels (L,) int64, cos, sin (L, head_dim / 2) float32) on the model's device."""
        key = str(self.device)
        if key not in self._tables:
            cfg = self.config
            cos, sin = rope_table(cfg.patch_nums, cfg.head_dim, cfg.rope_theta, cfg.rope_norm, self.device)
            self._tables[key] = (scale_index(cfg.patch_nums).to(self.device), cos, sin)
        return self._tables[key]

    def text_kv(self, states: torch.Tensor, mask: torch.Tensor, prompts: int | None = None) -> list[TextKV]:
        """Every block's text keys/values for states (R, T, D) and mask (R, T), of the rows the
        cross-attention mode reads: all R (per-row), row 0 (row0-broadcast), or the first ``prompts``
        rows, the conditional half of a guided batch (per-prompt; all rows when ``prompts`` is None).
        Raises SamplingError for a text width that is not the model's, or a bad mask."""
        if states.shape[-1] != self.config.text_dim:
            raise SamplingError(f"This STAR reads text features of width {self.config.text_dim}; got "
                                f"{states.shape[-1]}. Use the model's own text encoder (CLIP ViT-H/14, SD 2.1).")
        mode = self.config.cross_attn_mode
        keep = 1 if mode == "row0-broadcast" else (prompts or states.shape[0]) if mode == "per-prompt" else None
        if keep is not None:
            states, mask = states[:keep], mask[:keep]
        states = states.to(device=self.device, dtype=self.dtype)
        bias = text_mask_bias(mask.to(self.device), self.dtype)
        return [blk.cross_attn.text_kv(states, bias) for blk in self.blocks]

    def start_tokens(self, pooled: torch.Tensor, with_level: bool = True) -> torch.Tensor:
        """The first scale's input (B, h0·w0, C): encoder_proj(pooled) + pos_start (+ lvl_embed(0))."""
        levels, _, _ = self.tables()
        first_l = self.config.patch_nums[0] ** 2
        sos = self.encoder_proj(pooled.to(device=self.device, dtype=self.dtype))
        b = sos.shape[0]
        x = sos.unsqueeze(1).expand(b, first_l, -1) + self.pos_start.expand(b, first_l, -1)
        return x + self.lvl_embed(levels[:first_l]).unsqueeze(0) if with_level else x

    def scale_input(self, next_input: torch.Tensor, si: int) -> torch.Tensor:
        """VQ-VAE input of scale ``si`` (B, h·w, Cvae) → its tokens' input (B, h·w, C)."""
        levels, _, _ = self.tables()
        begin, end = self.config.begin_ends[si]
        return self.word_embed(next_input.to(self.dtype)) + self.lvl_embed(levels[begin:end]).unsqueeze(0)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Hidden states (B, l, C) → float32 logits (B, l, V)."""
        h = h.float()
        if self.logit_norm is not None:
            h = self.logit_norm(h)
        return self.head_logits(h.to(self.head_logits.weight.dtype)).float()

    # -- full-sequence forward (training, tests) ---------------------------------------------
    def forward(self, text_states: torch.Tensor, text_mask: torch.Tensor, pooled: torch.Tensor,
                x_wo_first: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, L', V) float32, L' = h0·w0 + x_wo_first's length.

        ``text_states`` (B, T, D), ``text_mask`` (B, T) of 0/1, ``pooled`` (B, D): the text encoder's
        outputs per row (rows are independent except through the row0-broadcast mode).
        ``x_wo_first`` (B, L − h0·w0, Cvae) (or a prefix of whole scales): the VQ-VAE's next-scale
        input of every scale after the first (``MultiScaleQuantizer.tokens_to_var_input``). The
        block-causal mask lets each scale see itself and coarser ones. Reference: ``VAR.forward``
        (its first output). Raises SamplingError on mis-shaped inputs.
        """
        check_text(text_states, text_mask, pooled, "prompt")
        levels, cos, sin = self.tables()
        first_l = self.config.patch_nums[0] ** 2
        x = torch.cat((self.start_tokens(pooled, with_level=False),
                       self.word_embed(x_wo_first.to(device=self.device, dtype=self.dtype))), dim=1)
        length = x.shape[1]
        if length > self.config.num_tokens or length not in {e for _, e in self.config.begin_ends}:
            raise SamplingError(f"x_wo_first must cover whole scales after the first (a length of "
                                f"{[e - first_l for _, e in self.config.begin_ends]}); got {x_wo_first.shape[1]}.")
        x = x + self.lvl_embed(levels[:length]).unsqueeze(0)
        text = self.text_kv(text_states, text_mask)
        bias = block_causal_mask(levels[:length], x.dtype)
        rope = (cos[:length], sin[:length])
        for blk, kv in zip(self.blocks, text):
            x = blk(x, kv, rope, attn_bias=bias)
        return self.logits(x)

    # -- sampling ------------------------------------------------------------------------------
    def bind(self, vqvae) -> "StarPair":
        """This transformer with its VQ-VAE (VAR's ``vae_ch160v4096z32``): what the next-scale sampler drives."""
        from .session import StarPair

        return StarPair(self, vqvae)

    def check_vqvae(self, vqvae) -> None:
        """Raise ConfigError when the VQ-VAE's codebook or latent width is not this transformer's."""
        if vqvae.codebook_size != self.vocab_size or vqvae.z_channels != self.config.cvae:
            raise ConfigError(
                f"The STAR transformer predicts {self.vocab_size} token ids over a {self.config.cvae}-channel latent "
                f"but the VQ-VAE has {vqvae.codebook_size} codes of {vqvae.z_channels} channels: they were not "
                f"trained together. STAR uses VAR's VQ-VAE, vae_ch160v4096z32.pth.")

    def with_cross_attn_mode(self, mode: str) -> "StarTransformer":
        """Switch the cross-attention mode in place (one of ``CROSS_ATTN_MODES``); returns self.
        Raises ConfigError for an unknown mode. Sessions started before keep their mode."""
        self.config = dataclasses.replace(self.config, cross_attn_mode=mode)  # validates the mode
        return self


__all__ = ["StarBlock", "StarTransformer"]
