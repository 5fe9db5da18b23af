"""Load Meissonic: the diffusers folder as released (``transformer/``, ``vqvae/``) or single files, strictly.

Layout of ``MeissonFlow/Meissonic`` (and of aMUSEd's ``vqvae/``): each component folder holds
``config.json`` and ``diffusion_pytorch_model.safetensors`` (fp32) and/or
``diffusion_pytorch_model.fp16.safetensors``. A single ``.safetensors`` file is accepted too: its
configuration comes from the ``arsample_config`` metadata (``arsample convert``), a ``config.json``
beside it, or the tensors. Every load is strict (``models.checkpoint.build_strict``): one error names
every missing, unexpected or mis-shaped key.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch

from ...errors import CheckpointError, ConfigError
from ..checkpoint import build_strict, read_checkpoint
from ..dtypes import parse_dtype
from ..sources import MEISSONIC_DOWNLOAD
from .config import KIND, VQ_KIND, detect_meissonic_kind, resolve_meissonic_config, resolve_vq_config
from .transformer import MeissonicTransformer
from .vqvae import MeissonicVQModel

HF_REPO = MEISSONIC_DOWNLOAD
WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors")
_PARTS = {
    "transformer": "Meissonic's MMDiT: diffusion_pytorch_model.safetensors + config.json",
    "vqvae": "the VQ model: diffusion_pytorch_model.safetensors + config.json",
}


@dataclass
class MeissonicModels:
    """The transformer and the VQ model of one Meissonic folder."""

    transformer: MeissonicTransformer
    vqvae: MeissonicVQModel


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"Cannot read '{path}' as JSON ({exc}); download it again.") from exc


def component_files(path: str | os.PathLike, part: str, dtype: torch.dtype = torch.float32) -> tuple[Path, dict | None]:
    """The weight file and the parsed config.json (None if absent) of a component.

    ``path``: the Meissonic folder (with ``part``/ inside), the component folder itself, or a
    ``.safetensors`` file. With both precisions present, fp16/bf16 loads read the ``.fp16`` file.
    Raises CheckpointError naming the missing part and where it goes.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"'{path}' does not exist. Give the Meissonic folder (with transformer/ and vqvae/), "
                              f"downloaded from {HF_REPO}.")
    if path.is_file():
        cfg = path.with_name("config.json")
        return path, (_read_json(cfg) if cfg.is_file() else None)
    folder = path / part if (path / part).is_dir() else path
    files = [folder / n for n in WEIGHT_NAMES if (folder / n).is_file()]
    if not files:
        if folder == path and not (path / "config.json").is_file():
            raise CheckpointError(f"'{path}' has no {part}/ ({_PARTS[part]}); download it from {HF_REPO}.")
        raise CheckpointError(f"'{folder}' has no diffusion_pytorch_model.safetensors (or .fp16.safetensors) for "
                              f"{part}/ ({_PARTS[part]}); download it from {HF_REPO}.")
    if len(files) > 1 and dtype != torch.float32:
        files = files[1:]
    cfg = folder / "config.json"
    return files[0], (_read_json(cfg) if cfg.is_file() else None)


def meissonic_from_state_dict(state: Mapping[str, torch.Tensor], json_config: Mapping | None = None,
                              metadata: Mapping[str, str] | None = None, *, filename: str = "",
                              override: Mapping | None = None, dtype="fp32", device="cpu") -> MeissonicTransformer:
    """A MeissonicTransformer from a state dict (diffusers key names), strictly, in eval mode."""
    kind = detect_meissonic_kind(state)
    if kind != KIND:
        what = "Meissonic's VQ model (vqvae/)" if kind == VQ_KIND else "not a Meissonic transformer"
        raise CheckpointError(f"'{filename or 'checkpoint'}' is {what}: expected the transformer/ weights "
                              f"(embed, context_embedder, cond_embed, mlm_layer).")
    config = resolve_meissonic_config(state, json_config, metadata, override, filename)
    model = build_strict(MeissonicTransformer, config, state, filename, dtype=parse_dtype(dtype))
    return model.to(device=device).eval().requires_grad_(False)


def vq_from_state_dict(state: Mapping[str, torch.Tensor], json_config: Mapping | None = None,
                       metadata: Mapping[str, str] | None = None, *, filename: str = "",
                       override: Mapping | None = None, dtype="fp32", device="cpu") -> MeissonicVQModel:
    """A MeissonicVQModel from a state dict (diffusers ``VQModel`` key names), strictly, in eval mode."""
    kind = detect_meissonic_kind(state)
    if kind != VQ_KIND:
        what = "Meissonic's transformer (transformer/)" if kind == KIND else "not a VQ model"
        raise CheckpointError(f"'{filename or 'checkpoint'}' is {what}: expected the vqvae/ weights "
                              f"(encoder, quantize.embedding, post_quant_conv, decoder).")
    config = resolve_vq_config(state, json_config, metadata, override)
    model = build_strict(MeissonicVQModel, config, state, filename, dtype=parse_dtype(dtype))
    return model.to(device=device).eval().requires_grad_(False)


def load_meissonic_transformer(path: str | os.PathLike, *, dtype="fp32", device="cpu",
                               override: Mapping | None = None) -> MeissonicTransformer:
    """Load the MMDiT from the Meissonic folder, its ``transformer/`` folder or a ``.safetensors`` file.

    dtype "fp32"/"bf16"/"fp16". Raises CheckpointError (missing part, unreadable file, wrong kind,
    keys that do not match) or ConfigError (a config.json this implementation cannot build).
    """
    file, cfg = component_files(path, "transformer", parse_dtype(dtype))
    state, metadata = read_checkpoint(file)
    return meissonic_from_state_dict(state, cfg, metadata, filename=str(file), override=override, dtype=dtype,
                                     device=device)


def load_meissonic_vqvae(path: str | os.PathLike, *, dtype="fp32", device="cpu",
                         override: Mapping | None = None) -> MeissonicVQModel:
    """Load the VQ model from the Meissonic (or aMUSEd) folder, its ``vqvae/`` folder or a ``.safetensors`` file
    (errors as ``load_meissonic_transformer``). The official config asks for fp32 decoding (``force_upcast``)."""
    file, cfg = component_files(path, "vqvae", parse_dtype(dtype))
    state, metadata = read_checkpoint(file)
    return vq_from_state_dict(state, cfg, metadata, filename=str(file), override=override, dtype=dtype, device=device)


def load_meissonic(folder: str | os.PathLike, *, dtype="fp32", vq_dtype="fp32", device="cpu") -> MeissonicModels:
    """Both parts of a Meissonic diffusers folder (the text encoder is not loaded here)."""
    folder = Path(folder)
    if folder.is_file():
        raise CheckpointError(f"'{folder}' is a file; give the Meissonic folder (with transformer/ and vqvae/), or "
                              f"load the parts one by one.")
    return MeissonicModels(load_meissonic_transformer(folder, dtype=dtype, device=device),
                           load_meissonic_vqvae(folder, dtype=vq_dtype, device=device))


__all__ = ["HF_REPO", "MeissonicModels", "component_files", "meissonic_from_state_dict", "vq_from_state_dict",
           "load_meissonic_transformer", "load_meissonic_vqvae", "load_meissonic"]
