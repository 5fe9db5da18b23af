"""Helpers shared by the CLI commands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import ARSampleError
from ..outputs import check_file_output


def output_path(path: str, flag: str) -> Path:
    """Check, before any work, that ``path`` can be written (see outputs.check_file_output).

    Commands with several outputs or with inputs use ``outputs.OutputPlan``, which also refuses
    outputs that are the same file as an input or as each other.
    """
    check_file_output(flag, path)
    return Path(path)


def embedded_inputs(name: str, parts=None) -> dict[str, Path]:
    """The files of an embedded model (all, or ``parts``) as named inputs of an OutputPlan (so no
    output replaces them)."""
    from ..models.embedded import embedded_paths

    paths = embedded_paths(name)
    return {f"--model {name} ({part} file)": paths[part] for part in (parts or paths)}


def entropy_heatmaps(result, images: np.ndarray, vmax: float | None = None, finest_only: bool = False) -> np.ndarray:
    """A SamplingResult's per-token entropy as RGB uint8 heatmaps at the size of its images (B, H, W, 3),
    drawn from the result's layout (one map per scale, side by side, or with ``finest_only`` the last
    scale's map alone, one image wide); colour scale 0..vmax (default: the max)."""
    from ..overlay import entropy_overlay, layout_overlay

    size_of = torch.zeros(1, *images.shape[1:3], 3)
    layout = result.layout
    if finest_only and len(layout.scales) > 1:
        finest = layout.maps(result.entropy)[-1].flatten(1)
        maps = entropy_overlay(finest, layout.scales[-1], size_of, 0.0, vmax or 0.0)
    else:
        maps = layout_overlay(result.entropy, layout, image=size_of, max_entropy=vmax or 0.0)
    return maps.mul(255).round().to(torch.uint8).numpy()


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
