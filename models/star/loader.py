"""Load STAR transformers: the released training snapshots (``.pth``) or our ``.safetensors``, strictly.

The released STAR files are training snapshots, ``torch.save({"epoch", "iter", "trainer": {"config",
"var_wo_ddp", "vae_local", "var_opt"}})`` (Davinci-XLab/STAR-T2I ``train.py``, ``trainer.py``
``VARTrainer.state_dict``): the model is ``trainer["var_wo_ddp"]``, beside the VQ-VAE it trained
with (``vae_local``), the optimiser and gradient-scaler state (``var_opt``) and a small config
(``patch_nums``, ``resos``, progressive-training counters). Every entry is a tensor or a plain
Python value (numbers, strings, tuples, lists, dicts, None), so ``torch.load(weights_only=True)``
reads the whole file without running code (through ``models.checkpoint``, memory-mapped: the
optimiser's tensors are never read); anything else in a file is refused there, never unpickled.
The snapshot's ``config["patch_nums"]`` gives the scale list, which the weights alone do not.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch

from ...errors import CheckpointError
from ..checkpoint import PICKLE_SUFFIXES, read_pickle, build_strict, clean_state_dict, read_checkpoint
from ..dtypes import parse_dtype
from .config import detect_star_kind, resolve_star_config
from .transformer import StarTransformer

log = logging.getLogger(__name__)

SNAPSHOT_KEY = "trainer"
MODEL_KEY = "var_wo_ddp"
VQVAE_KEY = "vae_local"


@dataclass
class StarFile:
    """What a STAR file holds: the transformer's state dict, the safetensors metadata (empty for
    snapshots), and from a training snapshot its recorded ``patch_nums`` and the VQ-VAE state dict
    (None when absent)."""

    state: dict[str, torch.Tensor]
    metadata: dict[str, str] = field(default_factory=dict)
    patch_nums: tuple[int, ...] | None = None
    vqvae_state: dict[str, torch.Tensor] | None = None


def is_training_snapshot(obj: object) -> bool:
    """True for a dict with a ``"trainer"`` entry (the layout of STAR's ``ar-ckpt*.pth`` files)."""
    return isinstance(obj, Mapping) and SNAPSHOT_KEY in obj


def read_star_file(path: str | os.PathLike) -> StarFile:
    """Read a STAR checkpoint: a training snapshot (``.pth``) or a flat state dict (``.safetensors``/``.pt``).

    Raises CheckpointError when the file is missing, unreadable, unsafe, or a snapshot without
    ``trainer`` → ``var_wo_ddp``.
    """
    path = Path(path)
    if path.suffix.lower() not in PICKLE_SUFFIXES or not path.is_file():
        state, metadata = read_checkpoint(path)  # safetensors, or the standard error for a bad path
        return StarFile(state, metadata)
    obj = read_pickle(path)
    if not is_training_snapshot(obj):
        return StarFile(clean_state_dict(obj, source=path.name))
    return snapshot_parts(obj, path.name)


def snapshot_parts(obj: Mapping, source: str = "checkpoint") -> StarFile:
    """The transformer (and VQ-VAE, scale list) inside a loaded training snapshot dict."""
    trainer = obj.get(SNAPSHOT_KEY)
    if not isinstance(trainer, Mapping) or not isinstance(trainer.get(MODEL_KEY), Mapping):
        found = sorted(str(k) for k in trainer) if isinstance(trainer, Mapping) else type(trainer).__name__
        raise CheckpointError(f"{source} looks like a STAR training snapshot but has no 'trainer' → 'var_wo_ddp' "
                              f"entry (its 'trainer' holds {found}); it is not a STAR model snapshot, or it was "
                              f"saved by another trainer. Give the star-*.pth file as released.")
    state = clean_state_dict(trainer[MODEL_KEY], source=f"{source} (trainer → var_wo_ddp)")
    config = trainer.get("config")
    patch = config.get("patch_nums") if isinstance(config, Mapping) else None
    vae = trainer.get(VQVAE_KEY)
    vae_state = clean_state_dict(vae, source=f"{source} (trainer → vae_local)") if isinstance(vae, Mapping) and vae \
        else None
    return StarFile(state, {}, tuple(int(p) for p in patch) if patch else None, vae_state)


def load_star(path: str | os.PathLike, *, override: Mapping | None = None, dtype="fp32",
              device: str | torch.device = "cpu") -> StarTransformer:
    """Load a STAR transformer with strict key checking.

    ``override`` may set any StarConfig field (e.g. ``cross_attn_mode``) plus ``image_size``.
    Raises CheckpointError (unreadable file, wrong kind, keys that do not match) or ConfigError
    (no scale list fits the checkpoint).
    """
    found = read_star_file(path)
    return star_from_state_dict(found.state, Path(path).name, found.metadata, override=override, dtype=dtype,
                                device=device, snapshot_patch_nums=found.patch_nums)


def star_from_state_dict(state: dict[str, torch.Tensor], filename: str = "", metadata: Mapping[str, str] | None = None,
                         *, override: Mapping | None = None, dtype="fp32", device="cpu",
                         snapshot_patch_nums=None) -> StarTransformer:
    """Build a StarTransformer from a flat state dict (see ``load_star``)."""
    expect_star(state, filename)
    config, notes = resolve_star_config(state, filename, metadata or {}, override, snapshot_patch_nums)
    for note in notes:
        log.warning("%s: %s", filename or "STAR", note)
    model = build_strict(StarTransformer, config, state, filename, dtype=parse_dtype(dtype))
    return model.to(device=device).eval().requires_grad_(False)


def expect_star(state: Mapping[str, torch.Tensor], filename: str = "") -> None:
    """Raise CheckpointError unless ``state`` is a plain STAR transformer's."""
    kind = detect_star_kind(state)
    name = filename or "checkpoint"
    if kind == "star-sampler":
        raise CheckpointError(f"'{name}' is STAR's causal-driven sampler checkpoint (star-1024-sampler): its extra "
                              f"sampler head is not supported. Use the star-1024 file for plain scale-wise sampling.")
    if kind != "star":
        raise CheckpointError(f"'{name}' is not a STAR transformer (no 'encoder_proj', 'head_logits' and "
                              f"'blocks.0.attn' weights).")


__all__ = ["StarFile", "is_training_snapshot", "read_star_file", "snapshot_parts", "load_star",
           "star_from_state_dict", "expect_star"]
