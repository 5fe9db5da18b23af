"""Load VAR transformers and VQ-VAEs (official ``.pth`` files or our ``.safetensors``), strictly."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping

import torch

from ...errors import CheckpointError, ConfigError
from ..checkpoint import build_strict, read_checkpoint
from ..dtypes import parse_dtype
from .config import detect_kind, infer_vqvae_config, resolve_var_config
from .transformer import VARTransformer, block_causal_mask, scale_index
from .vqvae import VARVQVAE

log = logging.getLogger(__name__)

_KIND_NAMES = {"var": "a VAR transformer", "var-vqvae": "a VAR VQ-VAE", "unknown": "not a VAR model"}
_HINTS = {"var": " Load it with the model loader instead.",
          "var-vqvae": " Load it with the VQ/tokenizer loader instead."}


def load_var(path: str | os.PathLike, *, override: Mapping | None = None, dtype="fp32",
             device: str | torch.device = "cpu") -> VARTransformer:
    """Load a VAR transformer with strict key checking.

    ``override`` may set any VARConfig field plus ``image_size`` (checked against the file's scales).
    """
    state, metadata = read_checkpoint(path)
    return var_from_state_dict(state, Path(path).name, metadata, override=override, dtype=dtype, device=device)


def var_from_state_dict(state: dict[str, torch.Tensor], filename: str = "", metadata: Mapping[str, str] | None = None,
                        *, override: Mapping | None = None, dtype="fp32", device="cpu") -> VARTransformer:
    expect_kind(state, "var", filename, "VAR transformer")
    config, notes = resolve_var_config(state, filename, metadata or {}, override)
    for note in notes:
        log.warning("%s: %s", filename or "VAR", note)
    state = _checked_buffers(state, config, filename)
    model = build_strict(VARTransformer, config, state, filename, dtype=parse_dtype(dtype))
    return model.to(device=device).eval().requires_grad_(False)


def load_vqvae(path: str | os.PathLike, *, override: Mapping | None = None, dtype="fp32",
               device: str | torch.device = "cpu") -> VARVQVAE:
    """Load VAR's multi-scale VQ-VAE (``vae_ch160v4096z32.pth`` or a small one) with strict key checking."""
    state, metadata = read_checkpoint(path)
    return vqvae_from_state_dict(state, Path(path).name, metadata, override=override, dtype=dtype, device=device)


def vqvae_from_state_dict(state: dict[str, torch.Tensor], filename: str = "",
                          metadata: Mapping[str, str] | None = None, *, override: Mapping | None = None,
                          dtype="fp32", device="cpu") -> VARVQVAE:
    expect_kind(state, "var-vqvae", filename, "VAR VQ-VAE")
    config = infer_vqvae_config(state, filename, metadata or {}, override)
    model = build_strict(VARVQVAE, config, state, filename, dtype=parse_dtype(dtype))
    return model.to(device=device).eval().requires_grad_(False)


def expect_kind(state: Mapping[str, torch.Tensor], wanted: str, filename: str, role: str) -> None:
    kind = detect_kind(state)
    if kind == wanted:
        return
    raise CheckpointError(f"'{filename or 'checkpoint'}' is {_KIND_NAMES[kind]}, not a {role}.{_HINTS.get(kind, '')}")


def _checked_buffers(state: Mapping[str, torch.Tensor], config, filename: str) -> dict[str, torch.Tensor]:
    """Check the two buffers that follow from the scale list, and drop the mask.

    ``lvl_1L`` (each token's scale) defines the token order. ``attn_bias_for_masking`` is the
    block-causal mask built from it, −inf by design, so the finiteness check of loaded weights
    would refuse it; our model builds it when it needs it.
    """
    name = filename or "checkpoint"
    expected = scale_index(config.patch_nums)
    lvl = state.get("lvl_1L")
    if lvl is not None and (lvl.numel() != expected.numel() or not torch.equal(lvl.reshape(-1).long().cpu(), expected)):
        raise ConfigError(f"'{name}' stores a scale order that is not {config.patch_nums}; pass the right "
                          f"patch_nums, or re-export the file.")
    state = dict(state)
    mask = state.pop("attn_bias_for_masking", None)
    if mask is not None:
        want = block_causal_mask(expected)
        if tuple(mask.shape) != tuple(want.shape) or not torch.equal(mask.float().cpu(), want):
            raise CheckpointError(f"'{name}' holds an attention mask 'attn_bias_for_masking' that is not VAR's "
                                  f"block-causal mask for the scales {config.patch_nums}: the file is corrupted or "
                                  f"not a VAR transformer. Download it again.")
    return state
