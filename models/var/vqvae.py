"""VAR's multi-scale VQ-VAE (``vae_ch160v4096z32``): encoder, decoder and the residual quantiser.

Module names follow the reference state dict (``encoder.down.N.block.M``, ``decoder.up.N.block.M``
with ``up.0`` the finest level, ``decoder.mid.{block_1,attn_1,block_2}``, ``quantize.embedding``,
``quantize.quant_resi.qresi_ls.K``, ``quant_conv``, ``post_quant_conv``), so official files load
unchanged.

The quantiser is where next-scale decoding keeps its state. Tokens of scale k (an h×w map of
codebook ids) are embedded, upsampled bicubically to the finest map, passed through the residual
convolution φ assigned to that scale, and added to the accumulated latent f̂; the next scale's
input is f̂ area-downsampled to that scale's size. The last scale is added without resizing. These
are the reference's own interpolation calls (``F.interpolate`` bicubic / area, default
``align_corners``), so f̂ matches it. φ(h) = (1 − r)·h + r·conv3x3(h) with r = 0.5, and scale k of S
uses the φ whose tick is nearest k/(S − 1) (ticks 1/12 … 11/12 for the official four).
Source: FoundationVision/VAR ``models/quant.py``, ``models/vqvae.py``, ``models/basic_vae.py``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import SamplingError
from ..vq_blocks import Downsample, Upsample
from .config import VQVAEConfig

Scales = Sequence[tuple[int, int]]


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    """norm → SiLU → conv, twice, plus a skip (1×1-projected when the width changes)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.norm1 = _group_norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = _group_norm(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x), inplace=True))
        h = self.conv2(F.silu(self.norm2(h), inplace=True))
        return self.nin_shortcut(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all positions: one 1×1 ``qkv`` conv, scale C^-1/2, ``proj_out``."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = _group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)  # (B, HW, C) each
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.proj_out(out.transpose(-1, -2).reshape(b, c, h, w))


def _attn(channels: int, on: bool) -> nn.Module:
    return AttnBlock(channels) if on else nn.Identity()


class _Level(nn.Module):
    """One resolution level: residual blocks, their attention (lowest level only), a resampler."""

    def __init__(self, blocks: list[nn.Module], attn: list[nn.Module]):
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.attn = nn.ModuleList(attn)

    def run(self, h: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.block):
            h = block(h)
            if len(self.attn):
                h = self.attn[i](h)
        return h


class _Mid(nn.Module):
    def __init__(self, width: int, attn: bool):
        super().__init__()
        self.block_1 = ResnetBlock(width, width)
        self.attn_1 = _attn(width, attn)
        self.block_2 = ResnetBlock(width, width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(h)))


class Encoder(nn.Module):
    """Image (B, 3, H, W) in [-1, 1] → latent (B, z, H/ds, W/ds)."""

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        ch, mult = cfg.ch, cfg.ch_mult
        self.conv_in = nn.Conv2d(3, ch, 3, padding=1)
        self.down = nn.ModuleList()
        width = ch
        for level, m in enumerate(mult):
            blocks, attn = [], []
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResnetBlock(width, ch * m))
                width = ch * m
                if level == len(mult) - 1 and cfg.using_sa:
                    attn.append(AttnBlock(width))
            stage = _Level(blocks, attn)
            if level != len(mult) - 1:
                stage.downsample = Downsample(width)
            self.down.append(stage)
        self.mid = _Mid(width, cfg.using_mid_sa)
        self.norm_out = _group_norm(width)
        self.conv_out = nn.Conv2d(width, cfg.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for stage in self.down:
            h = stage.run(h)
            if hasattr(stage, "downsample"):
                h = stage.downsample(h)
        return self.conv_out(F.silu(self.norm_out(self.mid(h)), inplace=True))


class Decoder(nn.Module):
    """Latent (B, z, h, w) → image (B, 3, h·ds, w·ds). ``up[0]`` is the finest level (run last)."""

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        ch, mult = cfg.ch, cfg.ch_mult
        width = ch * mult[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, width, 3, padding=1)
        self.mid = _Mid(width, cfg.using_mid_sa)
        levels: list[nn.Module] = [None] * len(mult)  # type: ignore[list-item]
        for level in reversed(range(len(mult))):
            blocks, attn = [], []
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(ResnetBlock(width, ch * mult[level]))
                width = ch * mult[level]
                if level == len(mult) - 1 and cfg.using_sa:
                    attn.append(AttnBlock(width))
            stage = _Level(blocks, attn)
            if level != 0:
                stage.upsample = Upsample(width)
            levels[level] = stage
        self.up = nn.ModuleList(levels)
        self.norm_out = _group_norm(width)
        self.conv_out = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for stage in reversed(self.up):
            h = stage.run(h)
            if hasattr(stage, "upsample"):
                h = stage.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h), inplace=True))


class Phi(nn.Conv2d):
    """The residual convolution φ(h) = (1 − r)·h + r·conv3x3(h)."""

    def __init__(self, channels: int, ratio: float):
        super().__init__(channels, channels, 3, padding=1)
        self.ratio = abs(ratio)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h.mul(1 - self.ratio) + super().forward(h).mul_(self.ratio)


class _PhiList(nn.Module):
    """The official partially shared layout: ``qresi_ls.K`` for K convolutions."""

    def __init__(self, phis: list[nn.Module]):
        super().__init__()
        self.qresi_ls = nn.ModuleList(phis)


class _PhiOne(nn.Module):
    """The fully shared layout: one ``qresi``."""

    def __init__(self, phi: nn.Module):
        super().__init__()
        self.qresi = phi


class MultiScaleQuantizer(nn.Module):
    """Codebook + residual convolutions: tokens of each scale ↔ the accumulated latent f̂."""

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.z_channels)
        make = (lambda: Phi(cfg.z_channels, cfg.quant_resi)) if abs(cfg.quant_resi) > 1e-6 else nn.Identity
        if cfg.phi_layout == "partial":
            self.quant_resi = _PhiList([make() for _ in range(cfg.phi_count)])
            self._phis = list(self.quant_resi.qresi_ls)
        elif cfg.phi_layout == "shared":
            self.quant_resi = _PhiOne(make())
            self._phis = [self.quant_resi.qresi]
        elif cfg.phi_layout == "nonshared":
            self.quant_resi = nn.ModuleList(make() for _ in range(cfg.phi_count))
            self._phis = list(self.quant_resi)
        else:
            self._phis = [nn.Identity()]
        count = len(self._phis)
        # The reference's tick positions of K φ's on [0, 1] (numpy, so ties resolve as there).
        self._ticks = np.linspace(1 / 3 / count, 1 - 1 / 3 / count, count) if count == 4 else \
            np.linspace(1 / 2 / count, 1 - 1 / 2 / count, count)
        self.register_buffer("ema_vocab_hit_SV", torch.zeros(cfg.ema_rows, cfg.vocab_size))

    def phi(self, si: int, num_scales: int) -> nn.Module:
        """The φ of scale ``si`` of ``num_scales`` (the one whose tick is nearest si/(S − 1))."""
        if len(self._phis) == 1:
            return self._phis[0]
        at = si / (num_scales - 1) if num_scales > 1 else 0.0
        return self._phis[int(np.argmin(np.abs(self._ticks - at)))]

    def _apply_phi(self, si: int, num_scales: int, h: torch.Tensor) -> torch.Tensor:
        weight = self.embedding.weight
        return self.phi(si, num_scales)(h.to(weight.dtype)).float()

    def embed(self, tokens: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Token ids (B, h·w) of one scale → embeddings (B, C, h, w) (float32)."""
        b = tokens.shape[0]
        return self.embedding(tokens).float().transpose(1, 2).reshape(b, self.cfg.z_channels, *size)

    @torch.no_grad()
    def add_scale(self, si: int, scales: Scales, f_hat: torch.Tensor, h: torch.Tensor) -> torch.Tensor | None:
        """Add scale ``si``'s embeddings ``h`` (B, C, h, w) to ``f_hat`` in place; return the next scale's
        input (f̂ area-downsampled to its size, (B, C, h', w')), or None after the last scale."""
        num = len(scales)
        final = tuple(f_hat.shape[-2:])
        if si != num - 1:
            f_hat.add_(self._apply_phi(si, num, F.interpolate(h, size=final, mode="bicubic")))
            return F.interpolate(f_hat, size=tuple(scales[si + 1]), mode="area")
        if tuple(h.shape[-2:]) != final:
            h = F.interpolate(h, size=final, mode="bicubic")
        f_hat.add_(self._apply_phi(si, num, h))
        return None

    def new_fhat(self, batch: int, scales: Scales, device=None) -> torch.Tensor:
        return torch.zeros(batch, self.cfg.z_channels, *scales[-1], dtype=torch.float32,
                           device=device or self.embedding.weight.device)

    @torch.no_grad()
    def tokens_to_fhat(self, tokens: torch.Tensor, scales: Scales, upto: int | None = None) -> torch.Tensor:
        """Tokens (B, L) of every scale (or of the first ``upto`` scales) → f̂ (B, C, H, W) float32."""
        f_hat = self.new_fhat(tokens.shape[0], scales, tokens.device)
        for si, (begin, end, size) in enumerate(_spans(scales)):
            if upto is not None and si >= upto:
                break
            self.add_scale(si, scales, f_hat, self.embed(tokens[:, begin:end], size))
        return f_hat

    @torch.no_grad()
    def tokens_to_var_input(self, tokens: torch.Tensor, scales: Scales) -> torch.Tensor:
        """Teacher-forcing input (B, L − h0·w0, C): each scale's f̂ so far, area-downsampled to the next
        scale, flattened in raster order (the reference's ``idxBl_to_var_input``)."""
        f_hat = self.new_fhat(tokens.shape[0], scales, tokens.device)
        out = []
        for si, (begin, end, size) in enumerate(_spans(scales)[:-1]):
            nxt = self.add_scale(si, scales, f_hat, self.embed(tokens[:, begin:end], size))
            out.append(nxt.flatten(2).transpose(1, 2))
        if not out:
            return f_hat.new_zeros(tokens.shape[0], 0, self.cfg.z_channels)
        return torch.cat(out, dim=1)

    @torch.no_grad()
    def quantize(self, f: torch.Tensor, scales: Scales) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent f (B, C, H, W) → tokens (B, L) of every scale and the final f̂ (residual quantisation).

        At each scale the residual f − f̂ is area-downsampled, each position takes its nearest code
        (Euclidean, or cosine with ``using_znorm``), and the code map joins f̂ as in sampling.
        """
        f = f.float()
        b, c, height, width = f.shape
        if tuple(scales[-1]) != (height, width):
            raise SamplingError(f"The latent is {height}x{width} but the last scale is {scales[-1]}.")
        book = self.embedding.weight.float()
        rest, f_hat, tokens = f.clone(), torch.zeros_like(f), []
        num = len(scales)
        for si, size in enumerate(scales):
            z = F.interpolate(rest, size=tuple(size), mode="area") if si != num - 1 else rest
            z = z.permute(0, 2, 3, 1).reshape(-1, c)
            if self.cfg.using_znorm:
                idx = torch.argmax(F.normalize(z, dim=-1) @ F.normalize(book.T, dim=0), dim=1)
            else:
                dist = torch.sum(z.square(), dim=1, keepdim=True) + torch.sum(book.square(), dim=1)
                dist.addmm_(z, book.T, alpha=-2, beta=1)
                idx = torch.argmin(dist, dim=1)
            idx = idx.view(b, *size)
            h = self.embedding(idx).float().permute(0, 3, 1, 2)
            if si != num - 1:
                h = F.interpolate(h, size=(height, width), mode="bicubic").contiguous()
            else:
                h = h.contiguous()
            h = self._apply_phi(si, num, h)
            f_hat.add_(h)
            rest.sub_(h)
            tokens.append(idx.reshape(b, -1))
        return torch.cat(tokens, dim=1), f_hat


def _spans(scales: Scales) -> list[tuple[int, int, tuple[int, int]]]:
    out, cur = [], 0
    for h, w in scales:
        out.append((cur, cur + h * w, (int(h), int(w))))
        cur += h * w
    return out


class VARVQVAE(nn.Module):
    """VAR's VQ-VAE: images ↔ multi-scale tokens, via the accumulated latent f̂."""

    def __init__(self, config: VQVAEConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quantize = MultiScaleQuantizer(config)
        ks = config.quant_conv_ks
        self.quant_conv = nn.Conv2d(config.z_channels, config.z_channels, ks, padding=ks // 2)
        self.post_quant_conv = nn.Conv2d(config.z_channels, config.z_channels, ks, padding=ks // 2)

    @property
    def codebook_size(self) -> int:
        return self.config.vocab_size

    @property
    def z_channels(self) -> int:
        return self.config.z_channels

    @property
    def downsample(self) -> int:
        return self.config.downsample

    @property
    def dtype(self) -> torch.dtype:
        return self.post_quant_conv.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.post_quant_conv.weight.device

    def check_tokens(self, tokens: torch.Tensor, scales: Scales) -> torch.Tensor:
        tokens = torch.as_tensor(tokens, device=self.device).long()
        total = sum(h * w for h, w in scales)
        if tokens.dim() != 2 or tokens.shape[1] != total:
            raise SamplingError(f"Expected tokens of shape (batch, {total}) for the scales {tuple(scales)}; got "
                                f"{tuple(tokens.shape)}.")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.codebook_size):
            raise SamplingError(f"Token ids must be in 0..{self.codebook_size - 1} for this VQ-VAE; got "
                                f"{int(tokens.min())}..{int(tokens.max())}. Are the tokens from a model with the "
                                f"same codebook?")
        return tokens

    @torch.no_grad()
    def fhat_to_image(self, f_hat: torch.Tensor) -> torch.Tensor:
        """f̂ (B, C, h, w) → image (B, 3, ds·h, ds·w), float32 clamped to [−1, 1] (``fhat_to_img``)."""
        return self.decoder(self.post_quant_conv(f_hat.to(self.device, self.dtype))).float().clamp_(-1, 1)

    @torch.no_grad()
    def decode_tokens(self, tokens: torch.Tensor, scales: Scales) -> torch.Tensor:
        """Tokens (B, L) of every scale → image (B, 3, H, W) float32 in [−1, 1]."""
        tokens = self.check_tokens(tokens, scales)
        return self.fhat_to_image(self.quantize.tokens_to_fhat(tokens, scales))

    @torch.no_grad()
    def encode_latent(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [−1, 1] → latent f (B, C, H/ds, W/ds) before quantisation."""
        h, w = images.shape[-2:]
        if h % self.downsample or w % self.downsample:
            raise SamplingError(f"Image size {w}x{h} is not a multiple of the VQ-VAE's downsample factor "
                                f"{self.downsample}.")
        return self.quant_conv(self.encoder(images.to(self.device, self.dtype)))

    @torch.no_grad()
    def encode_tokens(self, images: torch.Tensor, scales: Scales) -> torch.Tensor:
        """Images → multi-scale tokens (B, L) (the reference's ``img_to_idxBl``, concatenated)."""
        return self.quantize.quantize(self.encode_latent(images), scales)[0]
