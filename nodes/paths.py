"""Model folders: models/autoregressive (models) and models/vq (tokenizers), plus the embedded models."""

from __future__ import annotations

import os

import folder_paths

from ..models import registry
from ..models.registry import EMBEDDED_PREFIX, MODEL, TOKENIZER
from ..models.sources import not_in_folder, require_file_name

GPT_FOLDER = "autoregressive"
VQ_FOLDER = "vq"
_ROLES = {GPT_FOLDER: ("gpt", MODEL), VQ_FOLDER: ("vq", TOKENIZER)}  # folder → (message role, registry role)


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


def choices(folder: str) -> list[str]:
    """Dropdown entries: the embedded models first, then every checkpoint file in the folder."""
    embedded = [EMBEDDED_PREFIX + name for name in registry.embedded_names()]
    return embedded + list(folder_paths.get_filename_list(folder))


def resolve(folder: str, choice: str | None) -> str:
    """Absolute path of a dropdown entry; a readable error (what is missing, where it goes, where to download it)
    when the entry is None, blank or not in ``folder`` (e.g. a workflow from another machine)."""
    role, registry_role = _ROLES[folder]
    choice = require_file_name(choice, role)
    if choice.startswith(EMBEDDED_PREFIX):
        return str(registry.embedded_files(choice)[1][registry_role])
    path = folder_paths.get_full_path(folder, choice)
    if path is None:
        raise not_in_folder(choice, role)
    return path
