"""What travels between our nodes (plain Python objects; ComfyUI only passes them along).

Handles carry the model family and what the family made (``ModelInfo``, ``TokenizerInfo``,
and on AR_COND wires a ``models.registry.Condition``), never one family's own fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..models.registry import Family, ModelInfo, TokenizerInfo


@dataclass
class ARModelHandle:
    """A loaded model: its ModelPatcher (memory manager handle), its family, and facts about it."""

    patcher: Any
    family: Family
    info: ModelInfo

    @property
    def name(self) -> str:
        return self.info.name


@dataclass
class ARTokenizerHandle:
    """A loaded tokenizer (it turns tokens into pixels) in a ModelPatcher, with its family and facts."""

    patcher: Any
    family: Family
    info: TokenizerInfo

    @property
    def name(self) -> str:
        return self.info.name


@dataclass
class ARTextEncoderHandle:
    """A T5 encoder (ComfyUI's own T5 module) in a ModelPatcher, with its tokenizer."""

    patcher: Any
    tokenizer: Any
    name: str
    width: int


@dataclass
class ARTokens:
    """One sampler run, on the CPU: tokens (B, N), per-token entropy and temperature (B, N), in ``layout``
    order (a samplers.TokenLayout); the family and vocabulary they belong to; the sampler's label and stats."""

    tokens: torch.Tensor
    entropy: torch.Tensor
    temperature: torch.Tensor
    layout: Any
    vocab_size: int
    family: str
    sampler: str
    stats: Any
