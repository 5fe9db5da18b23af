"""Attention masks of LlamaGen's condition + image sequence."""

from __future__ import annotations

import torch


def causal_mask_with_columns(num_queries: int, start: int, col_valid: torch.Tensor | None, num_keys: int,
                             device) -> torch.Tensor:
    """Boolean attention mask (B|1, 1, Lq, Lk) for queries at start.. over keys 0..num_keys-1.

    Causal, with condition columns hidden where ``col_valid`` is False; a query
    always sees itself, so a fully padded condition row never yields NaN.
    """
    q_pos = torch.arange(start, start + num_queries, device=device)[:, None]
    k_pos = torch.arange(num_keys, device=device)[None, :]
    mask = (k_pos <= q_pos)[None, None]
    if col_valid is not None:
        cols = torch.ones(col_valid.shape[0], num_keys, dtype=torch.bool, device=device)
        cols[:, : col_valid.shape[1]] = col_valid
        mask = (mask & cols[:, None, None, :]) | (k_pos == q_pos)[None, None]
    return mask
