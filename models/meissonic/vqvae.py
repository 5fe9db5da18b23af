"""The VQ model of Meissonic and aMUSEd in plain torch (diffusers ``VQModel`` with ``lookup_from_codebook``).

Parameter names are those of the official ``vqvae/diffusion_pytorch_model.safetensors``:
``encoder.{conv_in, down_blocks.N.{resnets.M.{norm1, conv1, norm2, conv2, conv_shortcut},
downsamplers.0.conv}, mid_block.resnets.{0,1}, conv_norm_out, conv_out}``, ``quant_conv``,
``quantize.embedding``, ``post_quant_conv``, ``decoder.{conv_in, mid_block.resnets.{0,1},
up_blocks.N.{resnets.M…, upsamplers.0.conv}, conv_norm_out, conv_out}``.

Decoding token ids (what sampling needs): ids (B, h, w) → codebook rows **as stored** (no
normalisation) → ``post_quant_conv`` → decoder (mid block of two ResNet blocks, no attention;
levels from coarse to fine, each layers_per_block + 1 ResNet blocks then nearest ×2 + 3×3 conv;
GroupNorm eps 1e-6, SiLU) → (B, 3, 16·h, 16·w) for the official model. The reference pipeline clips
the result to [0, 1] (its image processor does not rescale from [−1, 1]): ``decode(..., clamp=True)``.

Source: diffusers 0.32.2 ``models/autoencoders/vq_model.py`` (``VQModel.decode`` with
``force_not_quantize=True``, ``encode``), ``models/autoencoders/vae.py`` (``Encoder``, ``Decoder``,
``VectorQuantizer.get_codebook_entry``), ``models/resnet.py`` (``ResnetBlock2D``),
``models/unets/unet_2d_blocks.py`` (``DownEncoderBlock2D``, ``UpDecoderBlock2D``, ``UNetMidBlock2D``);
MeissonFlow/Meissonic ``src/pipeline.py`` (the decode call and the clip).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import SamplingError
from ..vq_blocks import Downsample, Upsample
from .config import MeissonicVQConfig

EPS = 1e-6


class ResnetBlock(nn.Module):
    """GroupNorm → SiLU → 3×3 conv, twice, plus the (1×1-projected when widths differ) input."""

    def __init__(self, cin: int, cout: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=EPS)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, cout, eps=EPS)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.conv_shortcut is None else self.conv_shortcut(x)) + h


class MidBlock(nn.Module):
    def __init__(self, ch: int, groups: int):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(ch, ch, groups), ResnetBlock(ch, ch, groups)])

    def forward(self, x):
        return self.resnets[1](self.resnets[0](x))


class DownEncoderBlock(nn.Module):
    def __init__(self, cin: int, cout: int, layers: int, groups: int, down: bool):
        super().__init__()
        self.resnets = nn.ModuleList(ResnetBlock(cin if i == 0 else cout, cout, groups) for i in range(layers))
        self.downsamplers = nn.ModuleList([Downsample(cout)]) if down else None

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        return self.downsamplers[0](x) if self.downsamplers is not None else x


class UpDecoderBlock(nn.Module):
    def __init__(self, cin: int, cout: int, layers: int, groups: int, up: bool):
        super().__init__()
        self.resnets = nn.ModuleList(ResnetBlock(cin if i == 0 else cout, cout, groups) for i in range(layers))
        self.upsamplers = nn.ModuleList([Upsample(cout)]) if up else None

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        return self.upsamplers[0](x) if self.upsamplers is not None else x


class Encoder(nn.Module):
    def __init__(self, c: MeissonicVQConfig):
        super().__init__()
        ch, g = c.block_out_channels, c.norm_num_groups
        self.conv_in = nn.Conv2d(c.in_channels, ch[0], 3, padding=1)
        self.down_blocks = nn.ModuleList(
            DownEncoderBlock(ch[max(i - 1, 0)], ch[i], c.layers_per_block, g, down=i < len(ch) - 1)
            for i in range(len(ch)))
        self.mid_block = MidBlock(ch[-1], g)
        self.conv_norm_out = nn.GroupNorm(g, ch[-1], eps=EPS)
        self.conv_out = nn.Conv2d(ch[-1], c.latent_channels, 3, padding=1)

    def forward(self, x):
        x = self.conv_in(x)
        for block in self.down_blocks:
            x = block(x)
        return self.conv_out(F.silu(self.conv_norm_out(self.mid_block(x))))


class Decoder(nn.Module):
    def __init__(self, c: MeissonicVQConfig):
        super().__init__()
        ch, g = tuple(reversed(c.block_out_channels)), c.norm_num_groups
        self.conv_in = nn.Conv2d(c.latent_channels, ch[0], 3, padding=1)
        self.mid_block = MidBlock(ch[0], g)
        self.up_blocks = nn.ModuleList(
            UpDecoderBlock(ch[max(i - 1, 0)], ch[i], c.layers_per_block + 1, g, up=i < len(ch) - 1)
            for i in range(len(ch)))
        self.conv_norm_out = nn.GroupNorm(g, ch[-1], eps=EPS)
        self.conv_out = nn.Conv2d(ch[-1], c.out_channels, 3, padding=1)

    def forward(self, x):
        x = self.mid_block(self.conv_in(x))
        for block in self.up_blocks:
            x = block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class VectorQuantizer(nn.Module):
    """The codebook (``quantize.embedding``): rows looked up as stored, never normalised."""

    def __init__(self, num: int, dim: int):
        super().__init__()
        self.embedding = nn.Embedding(num, dim)


class MeissonicVQModel(nn.Module):
    """diffusers ``VQModel`` (Meissonic / aMUSEd ``vqvae/``): token ids ↔ images."""

    def __init__(self, config: MeissonicVQConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.quant_conv = nn.Conv2d(config.latent_channels, config.embed_dim, 1)
        self.quantize = VectorQuantizer(config.num_vq_embeddings, config.embed_dim)
        self.post_quant_conv = nn.Conv2d(config.embed_dim, config.latent_channels, 1)
        self.decoder = Decoder(config)

    @property
    def downsample(self) -> int:
        return self.config.downsample

    @property
    def codebook_size(self) -> int:
        return self.config.num_vq_embeddings

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """Codebook rows of ids (B, h, w) → (B, embed_dim, h, w) (reference ``get_codebook_entry``)."""
        if ids.ndim != 3 or ids.is_floating_point():
            raise SamplingError(f"VQ token ids must be an integer tensor (B, h, w); got {tuple(ids.shape)} {ids.dtype}.")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.codebook_size):
            raise SamplingError(f"VQ token ids must lie in [0, {self.codebook_size}) (mask tokens must be filled "
                                f"before decoding); got [{int(ids.min())}, {int(ids.max())}].")
        w = self.quantize.embedding.weight
        return self.quantize.embedding(ids.to(w.device)).permute(0, 3, 1, 2).contiguous()

    def decode(self, ids: torch.Tensor, clamp: bool = False) -> torch.Tensor:
        """ids (B, h, w) int → image (B, out_channels, 2^(levels−1)·h, …) in the weights' dtype.

        The reference's ``VQModel.decode(ids, force_not_quantize=True, shape=(B, h, w, C))``;
        ``clamp``: clip to [0, 1] as Meissonic's pipeline does (its output space is [0, 1]).
        Raises SamplingError for ids outside the codebook (e.g. mask tokens left).
        """
        img = self.decoder(self.post_quant_conv(self.lookup(ids)))
        return img.clamp(0, 1) if clamp else img

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """image (B, in_channels, H, W) → latents (B, embed_dim, H/f, W/f) before quantisation
        (reference ``VQModel.encode(...).latents``)."""
        w = self.quant_conv.weight
        return self.quant_conv(self.encoder(image.to(device=w.device, dtype=w.dtype)))

    def quantize_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Nearest codebook row (Euclidean) of every latent (B, C, h, w) → ids (B, h, w) int64."""
        b, c, h, w = latents.shape
        flat = latents.permute(0, 2, 3, 1).reshape(-1, c).float()
        return torch.cdist(flat, self.quantize.embedding.weight.float()).argmin(1).reshape(b, h, w)


__all__ = ["MeissonicVQModel", "ResnetBlock", "Encoder", "Decoder"]
