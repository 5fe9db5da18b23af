"""Load LlamaGen GPT and VQ checkpoints (official `.pt` files or our `.safetensors`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping

import torch

from ...errors import CheckpointError, ConfigError
from ..checkpoint import build_strict, read_checkpoint
from .config import detect_kind, infer_vq_config, resolve_gpt_config
from .gpt import LlamaGenGPT
from .vq import LlamaGenVQ

log = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
          "fp16": torch.float16, "float16": torch.float16}

_KIND_NAMES = {"gpt-c2i": "a LlamaGen class-to-image GPT", "gpt-t2i": "a LlamaGen text-to-image GPT",
               "vq": "a LlamaGen VQ tokenizer", "unknown": "not a LlamaGen model"}


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """'fp32'/'bf16'/'fp16' (or a torch dtype) → torch dtype; None → float32."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise ConfigError(f"Unsupported weight dtype {dtype}; use fp32, bf16 or fp16.")
        return dtype
    try:
        return DTYPES[str(dtype).lower()]
    except KeyError:
        raise ConfigError(f"Unknown dtype '{dtype}'; use fp32, bf16 or fp16.") from None


def load_gpt(path: str | os.PathLike, *, override: Mapping | None = None, dtype="fp32",
             device: str | torch.device = "cpu") -> LlamaGenGPT:
    """Load a LlamaGen GPT (c2i or t2i) with strict key checking.

    ``path`` is a checkpoint file or the name of an embedded model (``"tiny"``).
    ``override`` may set any GPTConfig field plus ``image_size`` and ``downsample``
    (default 16), e.g. ``{"n_head": 12, "image_size": 384}``.
    """
    path = _embedded_or_path(path, "gpt")
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
    """Load a LlamaGen VQ tokenizer (file, or embedded model name); its config comes from tensor shapes."""
    path = _embedded_or_path(path, "vq")
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


def _embedded_or_path(path, role: str):
    """An embedded model's file when ``path`` is its name (e.g. "tiny") and no such file exists."""
    from ..embedded import EMBEDDED_MODELS, embedded_paths

    if isinstance(path, str) and path.lower() in EMBEDDED_MODELS and not Path(path).exists():
        return embedded_paths(path)[role]
    return path


def _expect_kind(state: Mapping[str, torch.Tensor], wanted: tuple[str, ...], filename: str, role: str) -> None:
    kind = detect_kind(state)
    if kind in wanted:
        return
    hint = {"vq": " Load it with the VQ loader instead.",
            "gpt-c2i": " Load it with the GPT (model) loader instead.",
            "gpt-t2i": " Load it with the GPT (model) loader instead."}.get(kind, "")
    raise CheckpointError(f"'{filename or 'checkpoint'}' is {_KIND_NAMES[kind]}, not a {role}.{hint}")
