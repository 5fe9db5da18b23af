"""Helpers shared by the CLI commands."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ARSampleError


def output_path(path: str, flag: str) -> Path:
    """Check, before any work, that ``path`` can be written (its folder exists)."""
    p = Path(path)
    if p.is_dir():
        raise ARSampleError(f"{flag} '{path}' is a folder; give a file name.")
    if not p.parent.exists():
        raise ARSampleError(f"{flag}: folder '{p.parent}' does not exist; create it first.")
    return p


def pick_device(name: str | None) -> torch.device:
    """'cpu', 'cuda' or 'cuda:N'; None picks cuda when available."""
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ARSampleError("--device cuda was asked for but no CUDA GPU is available; use --device cpu.")
    return device


def parse_int_list(text: str, flag: str) -> list[int]:
    """'207,360, 387' → [207, 360, 387]."""
    try:
        values = [int(x) for x in text.replace(" ", "").split(",") if x != ""]
    except ValueError:
        raise ARSampleError(f"{flag} takes comma-separated integers, e.g. 207,360; got '{text}'.") from None
    if not values:
        raise ARSampleError(f"{flag} is empty; give at least one value.")
    return values
