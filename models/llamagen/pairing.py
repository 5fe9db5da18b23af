"""Checks that a GPT and a VQ tokenizer can work together."""

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

