"""Logits processing shared by every sampler: CFG, top-k, top-p, temperature.

All functions return new tensors; the caller's logits are never modified.
"""

from __future__ import annotations

import math

import torch

from ..errors import SamplingError


def apply_cfg(cond: torch.Tensor, uncond: torch.Tensor | None, scale: float,
              enabled: bool | torch.Tensor = True) -> torch.Tensor:
    """Classifier-free guidance: ``uncond + scale · (cond − uncond)`` for logits (B, ..., V).

    ``uncond`` None (no guidance rows) or ``enabled`` False returns ``cond`` as is. ``enabled``
    may be a bool tensor broadcastable to the leading dims (e.g. (B, L) for a multi-token
    pass that straddles ``cfg_interval``): guided where True, conditional elsewhere.
    """
    if uncond is None or enabled is False:
        return cond
    guided = uncond + (cond - uncond) * scale
    if enabled is True:
        return guided
    return torch.where(enabled[..., None], guided, cond)


def filter_top_k_top_p(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Set logits outside the top-k and outside the nucleus to -inf (0 / 1.0 = off).

    Top-k keeps every token tied with the k-th; top-p keeps the smallest prefix of
    the sorted distribution whose mass reaches ``top_p``, always including the
    first token that crosses it (LlamaGen's rule).
    """
    out = logits
    if top_k and top_k > 0:
        kth = torch.topk(out, int(top_k), dim=-1).values[..., -1:]
        out = out.masked_fill(out < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(out, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        # Drop a token once the mass strictly before it exceeds top_p ("> top_p" shifted right by one).
        remove_sorted = torch.zeros_like(cumulative, dtype=torch.bool)
        remove_sorted[..., 1:] = cumulative[..., :-1] > top_p
        remove = remove_sorted.scatter(-1, order, remove_sorted)
        out = out.masked_fill(remove, float("-inf"))
    return out


def check_sampling_settings(vocab_size: int | None, cfg_scale: float, top_k: int, top_p: float,
                            temperature) -> None:
    """Raise SamplingError for settings that cannot be right (NaN and inf included).

    ``vocab_size`` None skips the one check that needs the model (top-k within the vocabulary).
    """
    temps = temperature if isinstance(temperature, (list, tuple)) else [temperature]
    if isinstance(temperature, torch.Tensor):
        temps = temperature.flatten().tolist()
    require_finite(cfg=cfg_scale, top_p=top_p, temperature=temps)
    if cfg_scale < 0:
        raise SamplingError(f"cfg must be ≥ 0 (1 = no guidance); got {cfg_scale}.")
    if top_k < 0:
        raise SamplingError(f"top-k must be ≥ 0 (0 = off); got {top_k}.")
    if vocab_size is not None and top_k > vocab_size:
        raise SamplingError(f"top-k {top_k} is larger than the vocabulary ({vocab_size} tokens); "
                            f"use at most {vocab_size}, or 0 for no top-k.")
    if not 0.0 < top_p <= 1.0:
        raise SamplingError(f"top-p must be in (0, 1] (1 = off); got {top_p}.")
    if any(t < 0 for t in temps):
        raise SamplingError(f"temperature must be ≥ 0 (0 = greedy); got {temperature}.")


def require_finite(**values) -> None:
    """Raise SamplingError naming the first setting that is NaN or infinite (lists are checked item by item).

    Comparisons with NaN are always False, so range checks alone would let NaN through.
    """
    for name, value in values.items():
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if item is not None and not math.isfinite(float(item)):
                raise SamplingError(f"{name} must be a finite number; got {value}.")
