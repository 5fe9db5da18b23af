"""LlamaGen VQ tokenizer: convolutional encoder/decoder around an L2-normalised codebook.

Names follow the reference state dict (``encoder.conv_blocks.N.res.M...``,
``decoder.mid.N``, ``quantize.embedding``, ``quant_conv``, ``post_quant_conv``),
so VQ-16, VQ-8 and small variants load unchanged. Images are (B, 3, H, W) in
[-1, 1]; codes are (B, h*w) in raster order, matching the GPT's token order.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import SamplingError
from ..vq_blocks import Downsample, Upsample
from .config import VQConfig, grid_from_tokens


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    """norm → swish → conv, twice, plus a (1x1-projected when widths differ) skip."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.norm1 = _group_norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = _group_norm(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        if in_ch != out_ch:
            self.nin_shortcut = nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        skip = self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x
        return skip + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all spatial positions, 1x1-conv projections."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = _group_norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        y = self.norm(x)
        q, k, v = (proj(y).reshape(b, 1, c, h * w).transpose(-1, -2) for proj in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(c), as the reference
        return x + self.proj_out(out.transpose(-1, -2).reshape(b, c, h, w))


class Encoder(nn.Module):
    """Image (B, 3, H, W) → latent (B, z, H/ds, W/ds)."""

    def __init__(self, cfg: VQConfig):
        super().__init__()
        ch, mult = cfg.base_channels, cfg.ch_mult
        self.conv_in = nn.Conv2d(3, ch, 3, padding=1)
        self.conv_blocks = nn.ModuleList()
        width = ch
        for level, m in enumerate(mult):
            block = nn.Module()
            block.res = nn.ModuleList()
            block.attn = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                block.res.append(ResnetBlock(width, ch * m))
                width = ch * m
                if level == len(mult) - 1:
                    block.attn.append(AttnBlock(width))
            if level != len(mult) - 1:
                block.downsample = Downsample(width)
            self.conv_blocks.append(block)
        self.mid = nn.ModuleList([ResnetBlock(width, width), AttnBlock(width), ResnetBlock(width, width)])
        self.norm_out = _group_norm(width)
        self.conv_out = nn.Conv2d(width, cfg.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for block in self.conv_blocks:
            for i, res in enumerate(block.res):
                h = res(h)
                if len(block.attn):
                    h = block.attn[i](h)
            if hasattr(block, "downsample"):
                h = block.downsample(h)
        for layer in self.mid:
            h = layer(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """Latent (B, z, h, w) → image (B, 3, h*ds, w*ds), nominally in [-1, 1]."""

    def __init__(self, cfg: VQConfig):
        super().__init__()
        ch, mult = cfg.base_channels, cfg.ch_mult
        width = ch * mult[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, width, 3, padding=1)
        self.mid = nn.ModuleList([ResnetBlock(width, width), AttnBlock(width), ResnetBlock(width, width)])
        self.conv_blocks = nn.ModuleList()
        for level in reversed(range(len(mult))):
            block = nn.Module()
            block.res = nn.ModuleList()
            block.attn = nn.ModuleList()
            for _ in range(cfg.num_res_blocks + 1):
                block.res.append(ResnetBlock(width, ch * mult[level]))
                width = ch * mult[level]
                if level == len(mult) - 1:
                    block.attn.append(AttnBlock(width))
            if level != 0:
                block.upsample = Upsample(width)
            self.conv_blocks.append(block)
        self.norm_out = _group_norm(width)
        self.conv_out = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)
        for layer in self.mid:
            h = layer(h)
        for block in self.conv_blocks:
            for i, res in enumerate(block.res):
                h = res(h)
                if len(block.attn):
                    h = block.attn[i](h)
            if hasattr(block, "upsample"):
                h = block.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class VectorQuantizer(nn.Module):
    """Codebook lookup; rows are L2-normalised at use (the stored rows need not be)."""

    def __init__(self, cfg: VQConfig):
        super().__init__()
        self.l2_norm = cfg.codebook_l2_norm
        self.embedding = nn.Embedding(cfg.codebook_size, cfg.codebook_embed_dim)
        # Training-time usage tracker of the reference; kept so checkpoints load strictly.
        self.register_buffer("codebook_used", torch.zeros(65536))

    def codebook(self) -> torch.Tensor:
        w = self.embedding.weight
        return F.normalize(w, p=2, dim=-1) if self.l2_norm else w

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Indices (N,) of the nearest codebook rows to z (N, e)."""
        book = self.codebook().float()
        z = z.float()
        if self.l2_norm:
            z = F.normalize(z, p=2, dim=-1)
        dist = z.pow(2).sum(1, keepdim=True) + book.pow(2).sum(1) - 2 * z @ book.t()
        return dist.argmin(dim=1)


class LlamaGenVQ(nn.Module):
    """LlamaGen VQ tokenizer (VQ-16, VQ-8 or a smaller configured variant)."""

    def __init__(self, config: VQConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quantize = VectorQuantizer(config)
        self.quant_conv = nn.Conv2d(config.z_channels, config.codebook_embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(config.codebook_embed_dim, config.z_channels, 1)

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def downsample(self) -> int:
        return self.config.downsample

    @property
    def dtype(self) -> torch.dtype:
        return self.post_quant_conv.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.post_quant_conv.weight.device

    def codes_to_latent(self, codes: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        """Codes (B, h*w) or (B, h, w) → quantised latent (B, e, h, w)."""
        codes = torch.as_tensor(codes, device=self.device).long()
        if codes.dim() == 3:
            grid = tuple(codes.shape[1:])
            codes = codes.flatten(1)
        if codes.dim() != 2:
            raise SamplingError(f"Codes must have shape (batch, tokens) or (batch, h, w); got {tuple(codes.shape)}.")
        if grid is None:
            side = grid_from_tokens(codes.shape[1])
            grid = (side, side)
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise SamplingError(f"Token ids must be in 0..{self.codebook_size - 1} for this tokenizer; got "
                                f"{int(codes.min())}..{int(codes.max())}. Are the tokens from a model with the same codebook?")
        z = self.quantize.codebook()[codes]  # (B, h*w, e)
        return z.reshape(codes.shape[0], grid[0], grid[1], -1).permute(0, 3, 1, 2).to(self.dtype)

    @torch.no_grad()
    def decode_codes(self, codes: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        """Codes → image (B, 3, H, W), float32, nominally [-1, 1] (not clamped)."""
        z = self.codes_to_latent(codes, grid)
        return self.decoder(self.post_quant_conv(z)).float()

    def encode_latent(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] → pre-quantisation latent (B, e, h, w)."""
        h, w = images.shape[-2:]
        ds = self.downsample
        if h % ds or w % ds:
            raise SamplingError(f"Image size {w}x{h} is not a multiple of the tokenizer's downsample factor {ds}.")
        return self.quant_conv(self.encoder(images.to(self.device, self.dtype)))

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] → codes (B, h*w), raster order."""
        z = self.encode_latent(images)
        b, e, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, e).float()
        return self.quantize.nearest(flat).reshape(b, h * w)
