"""Checks that a GPT and a VQ tokenizer can work together, and image-size handling."""

from __future__ import annotations

from ...errors import ConfigError
from .gpt import LlamaGenGPT
from .vq import LlamaGenVQ


def check_pair(gpt: LlamaGenGPT, vq: LlamaGenVQ) -> None:
    """Raise ConfigError when the GPT's vocabulary and the VQ's codebook differ."""
    if gpt.vocab_size != vq.codebook_size:
        raise ConfigError(
            f"The GPT predicts {gpt.vocab_size} token ids but the VQ tokenizer has {vq.codebook_size} codes: "
            f"they were not trained together. Pair c2i GPTs with vq_ds16_c2i and t2i GPTs with vq_ds16_t2i."
        )


def set_image_size(gpt: LlamaGenGPT, image_size: int, downsample: int) -> None:
    """Make the GPT generate a square image of ``image_size`` pixels for a tokenizer of ``downsample``."""
    if image_size <= 0 or image_size % downsample:
        raise ConfigError(f"Image size {image_size} is not a positive multiple of the tokenizer's downsample "
                          f"factor {downsample}; use e.g. {max(1, image_size // downsample) * downsample}.")
    gpt.config = gpt.config.with_grid(image_size // downsample)


def image_size_of(gpt: LlamaGenGPT, vq: LlamaGenVQ) -> int:
    """Side in pixels of the images this pair produces."""
    return gpt.grid_size * vq.downsample
