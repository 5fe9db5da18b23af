"""Model folders: models/autoregressive (models) and models/vq (tokenizers), plus the embedded models.

A diffusers model folder kept whole in models/autoregressive/ (Meissonic: ``Meissonic/transformer/``,
``Meissonic/vqvae/``, ...) is listed file by file by ComfyUI. The tokenizer loader offers its ``vqvae/`` files
too (the entry is the path under models/autoregressive/, e.g. ``Meissonic/vqvae/diffusion_pytorch_model.safetensors``),
so nobody has to copy the VQ into models/vq/; the model loader refuses its ``vqvae/`` and ``text_encoder/`` files
with a message that says which loader reads them.
"""

from __future__ import annotations

import os
import re

import folder_paths

from ..errors import CheckpointError
from ..models import registry
from ..models.registry import EMBEDDED_PREFIX, MODEL, TOKENIZER
from ..models.sources import MEISSONIC_DOWNLOAD as MEISSONIC_REPO
from ..models.sources import not_in_folder, require_file_name

GPT_FOLDER = "autoregressive"
VQ_FOLDER = "vq"
_ROLES = {GPT_FOLDER: ("gpt", MODEL), VQ_FOLDER: ("vq", TOKENIZER)}  # folder → (message role, registry role)
VQ_PART = "vqvae"  # the VQ component folder of a diffusers model folder (Meissonic's, aMUSEd's)
TEXT_PART = "text_encoder"  # its text encoder, which ComfyUI's own 'Load CLIP' reads from models/text_encoders/


def register_folders() -> None:
    """Register our folders with the usual checkpoint extensions, merging with extra_model_paths.yaml."""
    for name in (GPT_FOLDER, VQ_FOLDER):
        default = os.path.join(folder_paths.models_dir, name)
        exts = set(folder_paths.supported_pt_extensions)
        if name in folder_paths.folder_names_and_paths:
            paths, old_exts = folder_paths.folder_names_and_paths[name]
            if default not in paths:
                paths.append(default)
            folder_paths.folder_names_and_paths[name] = (paths, set(old_exts) | exts)
        else:
            folder_paths.folder_names_and_paths[name] = ([default], exts)


def _folders(choice: str) -> list[str]:
    """The folder components of an entry (ComfyUI lists sub-folders with the OS separator)."""
    return [part for part in re.split(r"[\\/]+", choice) if part][:-1]


def in_part(choice: str, part: str) -> bool:
    """Whether the entry ``choice`` lies in a ``part`` folder (e.g. ``Meissonic/vqvae/...``)."""
    return part in _folders(choice)


def choices(folder: str) -> list[str]:
    """Dropdown entries: the embedded models first, then every checkpoint file in the folder; for the tokenizer
    loader also the files of models/autoregressive/ that lie in a ``vqvae/`` folder (a diffusers model folder kept
    whole there, as Meissonic's), under their path there."""
    embedded = [EMBEDDED_PREFIX + name for name in registry.embedded_names()]
    names = list(folder_paths.get_filename_list(folder))
    if folder == VQ_FOLDER:
        known = set(names)
        names += [n for n in folder_paths.get_filename_list(GPT_FOLDER) if in_part(n, VQ_PART) and n not in known]
    return embedded + names


def resolve(folder: str, choice: str | None) -> str:
    """Absolute path of a dropdown entry; a readable error (what is missing, where it goes, where to download it)
    when the entry is None, blank or not in ``folder`` (e.g. a workflow from another machine). A tokenizer entry
    in a ``vqvae/`` folder is looked up in models/autoregressive/ too; a model entry in a ``vqvae/`` or
    ``text_encoder/`` folder is refused with the loader that reads it."""
    role, registry_role = _ROLES[folder]
    choice = require_file_name(choice, role)
    if choice.startswith(EMBEDDED_PREFIX):
        return str(registry.embedded_files(choice)[1][registry_role])
    if folder == GPT_FOLDER:
        _refuse_other_parts(choice)
    path = folder_paths.get_full_path(folder, choice)
    if path is None and folder == VQ_FOLDER and in_part(choice, VQ_PART):
        path = folder_paths.get_full_path(GPT_FOLDER, choice)
        if path is None:
            raise _missing_vq_part(choice)
    if path is None:
        raise not_in_folder(choice, role)
    return path


def _root(choice: str, part: str) -> str:
    """The model folder above the ``part`` folder of an entry, as a path under models/autoregressive/."""
    folders = _folders(choice)
    return "/".join(folders[:folders.index(part)])


def _refuse_other_parts(choice: str) -> None:
    """A model-loader entry in the ``vqvae/`` or ``text_encoder/`` folder of a diffusers folder: which loader reads
    it, and which file of the folder this loader takes."""
    for part in (VQ_PART, TEXT_PART):
        if not in_part(choice, part):
            continue
        root = _root(choice, part)
        here = f"{root}/transformer/diffusion_pytorch_model.safetensors" if root else "the transformer/ file"
        if part == VQ_PART:
            where = "pick it in 'Load VQ Tokenizer' (vq_name)"
        else:
            where = ("put it in models/text_encoders/ and load it with ComfyUI's own 'Load CLIP' (type "
                     "stable_diffusion)")
        raise CheckpointError(f"'{choice}' (ckpt_name) is the {part}/ part of a model folder, not a model: {where}; "
                              f"here pick the folder's transformer ({here}).")


def _missing_vq_part(choice: str) -> CheckpointError:
    """The error for a ``vqvae/`` entry that is not in models/autoregressive/: its folder, or the folder's
    ``vqvae/``, is missing."""
    root = _root(choice, VQ_PART)
    shown = f"models/{GPT_FOLDER}/{root}/" if root else f"models/{GPT_FOLDER}/"
    bases = folder_paths.get_folder_paths(GPT_FOLDER)
    has_root = bool(root) and any(os.path.isdir(os.path.join(base, root)) for base in bases)
    if has_root:
        what = (f"{shown} has no {VQ_PART}/ with this file (the folder's VQ model: diffusion_pytorch_model.safetensors "
                f"+ config.json). A Meissonic folder needs its {VQ_PART}/ beside transformer/: download it from "
                f"{MEISSONIC_REPO} into {shown}{VQ_PART}/")
    else:
        what = (f"there is no {shown}. Download the Meissonic folder (its transformer/ and {VQ_PART}/) from "
                f"{MEISSONIC_REPO} into {shown}")
    return CheckpointError(f"The VQ model '{choice}' (vq_name) is not there: {what} and press R, or pick another "
                           f"tokenizer (or embedded:tiny).")
