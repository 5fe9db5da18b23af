"""What travels between our nodes (plain Python objects; ComfyUI only passes them along)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class ARModelHandle:
    """A loaded GPT: its ModelPatcher (memory manager handle) and facts nodes need without loading it."""

    patcher: Any
    name: str
    model_type: str  # "c2i" | "t2i"
    num_classes: int
    vocab_size: int
    grid_size: int
    class_names: list[str] | None = None
    caption_tokens: int = 0  # t2i: condition tokens (120 for LlamaGen)
    caption_dim: int = 0  # t2i: text-feature width the GPT reads (2048 = FLAN-T5-XL)


@dataclass
class ARVQHandle:
    patcher: Any
    name: str
    codebook_size: int
    downsample: int


@dataclass
class ARConditioning:
    """What to generate, one image per row: class ids (c2i), or left-aligned prompt features + mask (t2i)."""

    labels: torch.Tensor | None
    names: list[str] = field(default_factory=list)
    caption: torch.Tensor | None = None  # (B, T, C) float32, CPU
    caption_mask: torch.Tensor | None = None  # (B, T), 1 = prompt token

    @property
    def kind(self) -> str:
        return "c2i" if self.labels is not None else "t2i"


@dataclass
class ARTextEncoderHandle:
    """A T5 encoder (ComfyUI's own T5 module) in a ModelPatcher, with its tokenizer."""

    patcher: Any
    tokenizer: Any
    name: str
    width: int


@dataclass
class ARTokens:
    """Sampled tokens (B, N) and per-token entropy (B, N), CPU; grid side; run statistics."""

    tokens: torch.Tensor
    entropy: torch.Tensor
    grid_size: int
    vocab_size: int
    sampler: str
    stats: Any
