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


@dataclass
class ARVQHandle:
    patcher: Any
    name: str
    codebook_size: int
    downsample: int


@dataclass
class ARConditioning:
    """Class ids to generate, one image each, in order."""

    labels: torch.Tensor
    names: list[str] = field(default_factory=list)


@dataclass
class ARTokens:
    """Sampled tokens (B, N) and per-token entropy (B, N), CPU; grid side; run statistics."""

    tokens: torch.Tensor
    entropy: torch.Tensor
    grid_size: int
    vocab_size: int
    sampler: str
    stats: Any
