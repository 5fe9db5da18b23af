"""Model folders: models/autoregressive (GPT) and models/vq (tokenizers), plus the embedded model."""

from __future__ import annotations

import os

import folder_paths

from ..models.embedded import EMBEDDED_MODELS

GPT_FOLDER = "autoregressive"
VQ_FOLDER = "vq"
EMBEDDED_PREFIX = "embedded:"  # list entries for the models shipped inside the pack


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
    embedded = [EMBEDDED_PREFIX + name for name in EMBEDDED_MODELS]
    return embedded + list(folder_paths.get_filename_list(folder))


def resolve(folder: str, choice: str | None, role: str) -> str:
    """Absolute path of a dropdown entry; a readable error (what is missing, where it goes, where to download it)
    when the entry is None, blank or not in ``folder`` (e.g. a workflow from another machine)."""
    from ..models.embedded import embedded_paths
    from ..models.sources import not_in_folder, require_file_name

    choice = require_file_name(choice, role)
    if choice.startswith(EMBEDDED_PREFIX):
        return str(embedded_paths(choice[len(EMBEDDED_PREFIX):])[role])
    path = folder_paths.get_full_path(folder, choice)
    if path is None:
        raise not_in_folder(choice, role)
    return path
