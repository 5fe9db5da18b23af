"""VAR's own top-k / top-p rules (``models/helpers.py`` ``sample_with_top_k_top_p_``), as a pure function.

Top-k is LlamaGen's rule (every token tied with the k-th largest logit survives). Top-p is not:
VAR sorts the distribution in *ascending* order, accumulates probability from the least likely
token upwards, and removes every token whose running mass is ≤ 1 − top_p, always keeping the most
likely token. LlamaGen sorts descending and keeps a token while the mass strictly before it is
≤ top_p. The two differ at the boundary (equal masses, and the two summation orders round
differently), so VAR's tokens need VAR's rule. The operations here are the reference's, in its
order, on a copy (the reference masks the caller's logits in place).

Off values: top_k 0, and top_p 1.0 (the reference's API uses 0 for off; at 1.0 its rule only
removes tokens whose probability is already exactly 0, so skipping it gives the same distribution).
"""

from __future__ import annotations

import torch


def filter_top_k_top_p_var(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Logits (..., V) with the tokens outside VAR's top-k and top-p set to −inf (a new tensor)."""
    out = logits
    if top_k and top_k > 0:
        kth = out.topk(int(top_k), largest=True, sorted=False, dim=-1)[0].amin(dim=-1, keepdim=True)
        out = out.masked_fill(out < kth, -torch.inf)
    if 0.0 < top_p < 1.0:
        sorted_logits, order = out.sort(dim=-1, descending=False)
        remove = sorted_logits.softmax(dim=-1).cumsum_(dim=-1) <= (1 - top_p)
        remove[..., -1:] = False
        out = out.masked_fill(remove.scatter(order.ndim - 1, order, remove), -torch.inf)
    return out
