"""2D rotary position embedding of LlamaGen.

Half of each head's rotation pairs turn with the token's row, the other half
with its column. Condition positions get cos = sin = 0, which zeroes their
queries and keys: the pretrained weights expect exactly that, so it is kept.
"""

from __future__ import annotations

import torch


def rope_table_2d(grid_size: int, head_dim: int, base: float, num_condition: int,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """cos/sin table of shape (num_condition + grid_size², head_dim/2, 2), float32.

    Row ``num_condition + r*grid_size + c`` holds the angles for image token (r, c);
    the first ``num_condition`` rows are zero.
    """
    quarter = head_dim // 4
    half = head_dim // 2
    inv_freq = 1.0 / (base ** (torch.arange(0, half, 2, device=device)[:quarter].float() / half))
    steps = torch.arange(grid_size, device=device, dtype=torch.float32)
    angles_1d = torch.outer(steps, inv_freq)  # (grid, quarter)
    rows = angles_1d[:, None, :].expand(grid_size, grid_size, quarter)
    cols = angles_1d[None, :, :].expand(grid_size, grid_size, quarter)
    angles = torch.cat([rows, cols], dim=-1).reshape(grid_size * grid_size, half)
    table = torch.stack([angles.cos(), angles.sin()], dim=-1)
    zeros = torch.zeros(num_condition, half, 2, device=device)
    return torch.cat([zeros, table], dim=0)


def apply_rope(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent pairs of x (B, L, H, D) by ``table``; math in float32.

    ``table`` is (L, D/2, 2) for positions shared by every row, or (B, L, D/2, 2) when
    each row sits at its own positions (ragged speculative decoding).
    """
    pairs = x.float().unflatten(-1, (-1, 2))  # (B, L, H, D/2, 2)
    per_row = table if table.dim() == 4 else table[None]
    cos = per_row[:, :, None, :, 0]
    sin = per_row[:, :, None, :, 1]
    a, b = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack([a * cos - b * sin, b * cos + a * sin], dim=-1)
    return rotated.flatten(-2).type_as(x)
