"""STAR's normalised 2-D rotary position embedding ("axial" RoPE, one table per scale).

Each scale is a p×p token map in raster order; token t sits at column x = t mod p and row
y = ⌊t / p⌋. With normalisation on and p > 1 both are rescaled to [0, norm] (x / (p − 1) · norm),
so every scale spans the same angles whatever its size; a 1×1 map stays at 0 (no rotation). A head
of width d is read as d/2 consecutive pairs (complex numbers); the first d/4 pairs rotate by x, the
last d/4 by y, with frequencies 1 / theta^(4i/d), i < d/4. The rotation is applied to q and k before
their l2 normalisation (it keeps their norm).

Source: Davinci-XLab/STAR-T2I ``models/embed_rope.py`` (``compute_axial_cis``, ``init_t_xy``,
``apply_rotary_emb``), ``models/var_drop.py`` (one table per scale, concatenated).
"""

from __future__ import annotations

from typing import Sequence

import torch


def axial_angles(side: int, head_dim: int, theta: float, norm: float | None) -> torch.Tensor:
    """Rotation angles (side², head_dim / 2) float32 of one side×side map: x half, then y half."""
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 4)[: head_dim // 4].float() / head_dim))
    t = torch.arange(side * side, dtype=torch.float32)
    tx = t % side
    ty = torch.div(t, side, rounding_mode="floor")
    if norm is not None and t.numel() > 1:
        tx = tx / tx.max() * norm
        ty = ty / ty.max() * norm
    return torch.cat((torch.outer(tx, freqs), torch.outer(ty, freqs)), dim=-1)


def rope_table(patch_nums: Sequence[int], head_dim: int, theta: float, norm: float | None,
               device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin), each (L, head_dim / 2) float32, for every token of every scale in order."""
    angles = torch.cat([axial_angles(int(p), head_dim, theta, norm) for p in patch_nums], dim=0)
    # torch.polar(1, a) is (cos a, sin a): the reference's table, kept real so any device can use it.
    unit = torch.polar(torch.ones_like(angles), angles)
    return unit.real.contiguous().to(device), unit.imag.contiguous().to(device)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive pairs of ``x`` (B, H, l, d) by the angles of ``cos``/``sin`` (l, d/2).

    Computed in float32 (as the reference) and returned in ``x``'s dtype.
    """
    pairs = x.float().reshape(*x.shape[:-1], -1, 2)
    re, im = pairs.unbind(-1)
    out = torch.stack((re * cos - im * sin, re * sin + im * cos), dim=-1)
    return out.flatten(-2).to(x.dtype)


__all__ = ["axial_angles", "rope_table", "apply_rope"]
