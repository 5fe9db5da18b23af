"""Load LlamaGen GPT and VQ checkpoints (official `.pt` files or our `.safetensors`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping

import torch

from ...errors import CheckpointError
from ..checkpoint import build_strict, read_checkpoint
from ..dtypes import DTYPES, parse_dtype  # noqa: F401  (re-exported: callers import them from here)
from .config import detect_kind, infer_vq_config, resolve_gpt_config
from .gpt import LlamaGenGPT
from .vq import LlamaGenVQ

log = logging.getLogger(__name__)

_KIND_NAMES = {"gpt-c2i": "a LlamaGen class-to-image GPT", "gpt-t2i": "a LlamaGen text-to-image GPT",
               "vq": "a LlamaGen VQ tokenizer", "unknown": "not a LlamaGen model"}


def load_gpt(path: str | os.PathLike, *, override: Mapping | None = None, dtype="fp32",
             device: str | torch.device = "cpu") -> LlamaGenGPT:
    """Load a LlamaGen GPT (c2i or t2i) from a checkpoint file with strict key checking.

    ``override`` may set any GPTConfig field plus ``image_size`` and ``downsample``
    (default 16), e.g. ``{"n_head": 12, "image_size": 384}``.
    """
    state, metadata = read_checkpoint(path)
    return gpt_from_state_dict(state, Path(path).name, metadata, override=override, dtype=dtype, device=device)


def gpt_from_state_dict(state: dict[str, torch.Tensor], filename: str = "", metadata: Mapping[str, str] | None = None,
                        *, override: Mapping | None = None, dtype="fp32", device="cpu") -> LlamaGenGPT:
    """Build and load a GPT from an already-read state dict (see load_gpt)."""
    _expect_kind(state, ("gpt-c2i", "gpt-t2i"), filename, "GPT")
    config, notes = resolve_gpt_config(state, filename, metadata or {}, override)
    for note in notes:
        log.warning("%s: %s", filename or "GPT", note)
    model = build_strict(LlamaGenGPT, config, state, filename)
    return model.to(device=device, dtype=parse_dtype(dtype)).eval().requires_grad_(False)


def load_vq(path: str | os.PathLike, *, override: Mapping | None = None, dtype="fp32",
            device: str | torch.device = "cpu") -> LlamaGenVQ:
    """Load a LlamaGen VQ tokenizer from a checkpoint file; its config comes from tensor shapes."""
    state, metadata = read_checkpoint(path)
    return vq_from_state_dict(state, Path(path).name, metadata, override=override, dtype=dtype, device=device)


def vq_from_state_dict(state: dict[str, torch.Tensor], filename: str = "", metadata: Mapping[str, str] | None = None,
                       *, override: Mapping | None = None, dtype="fp32", device="cpu") -> LlamaGenVQ:
    """Build and load a VQ tokenizer from an already-read state dict (see load_vq)."""
    _expect_kind(state, ("vq",), filename, "VQ tokenizer")
    config = infer_vq_config(state, metadata or {}, override)
    state = dict(state)
    state.setdefault("quantize.codebook_used", torch.zeros(65536))  # absent when usage tracking was off
    model = build_strict(LlamaGenVQ, config, state, filename)
    return model.to(device=device, dtype=parse_dtype(dtype)).eval().requires_grad_(False)


def _expect_kind(state: Mapping[str, torch.Tensor], wanted: tuple[str, ...], filename: str, role: str) -> None:
    kind = detect_kind(state)
    if kind in wanted:
        return
    hint = {"vq": " Load it with the VQ loader instead.",
            "gpt-c2i": " Load it with the GPT (model) loader instead.",
            "gpt-t2i": " Load it with the GPT (model) loader instead."}.get(kind, "")
    raise CheckpointError(f"'{filename or 'checkpoint'}' is {_KIND_NAMES[kind]}, not a {role}.{hint}")
