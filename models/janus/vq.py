"""Janus-Pro's generation tokenizer: LlamaGen's VQ-16 (our ``models.llamagen.vq.LlamaGenVQ``), decoder side only.

The release stores it under ``gen_vision_model.`` (the reference's ``VQ_models["VQ-16"]()``: codebook
16384 × 8 with L2-normalised lookup, 128 channels, ch_mult (1, 1, 2, 2, 4), two residual blocks, z 256; the
architecture comes from the tensor shapes here, so smaller test models load too). Generation only decodes,
so the encoder and ``quant_conv`` are neither built nor read; the reference decodes with
``decode_code(tokens, shape=[B, 8, h, w])``, which is ``LlamaGenVQ.decode_codes``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ...errors import SamplingError
from ..llamagen.config import VQConfig
from ..llamagen.vq import Decoder, LlamaGenVQ, VectorQuantizer


class JanusVQ(LlamaGenVQ):
    """A LlamaGenVQ without its encoder: ``quantize`` (codebook), ``post_quant_conv``, ``decoder``.

    ``decode_codes(codes (B, h·w) int, grid (h, w))`` → images (B, 3, h·ds, w·ds) float32, nominally [-1, 1].
    """

    def __init__(self, config: VQConfig):
        nn.Module.__init__(self)
        self.config = config
        self.decoder = Decoder(config)
        self.quantize = VectorQuantizer(config)
        self.post_quant_conv = nn.Conv2d(config.codebook_embed_dim, config.z_channels, 1)

    def encode_latent(self, images: torch.Tensor) -> torch.Tensor:
        raise SamplingError("Janus-Pro's tokenizer is loaded for decoding only (its encoder is not read).")
