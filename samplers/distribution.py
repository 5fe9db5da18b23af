"""From model logits to the distribution a token is drawn from.

This is the per-token hot path, written once and shared by the AR loop and
speculative decoding, so every sampler sees exactly the same distribution.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .entropy import entropy
from .logits import apply_cfg, filter_top_k_top_p
from .settings import SamplerSettings


class TokenDistribution(NamedTuple):
    probs: torch.Tensor  # (B, ..., V) float32 sampling distribution
    model_entropy: torch.Tensor  # (B, ...) entropy (nats) of the guided, unfiltered, untempered distribution
    temperature: torch.Tensor  # (B, ...) temperature actually applied


def token_distribution(logits, settings: SamplerSettings, base_temperature: torch.Tensor,
                       cfg_active: bool | torch.Tensor = True, greedy: torch.Tensor | None = None
                       ) -> TokenDistribution:
    """Sampling distribution for logits (B, ..., V).

    ``logits`` is a session's ``(cond, uncond)`` pair (uncond None without guidance), or one
    tensor of logits that need no guidance. ``base_temperature`` is (B, 1) for logits (B, V)
    or broadcastable to the leading dims. ``cfg_active``: guidance on or off, or a bool mask
    over the leading dims (see apply_cfg). Plain: temperature first, then top-k/top-p
    (LlamaGen's ``sample``). Entropy: top-k/top-p first, H from the filtered (or raw) logits,
    then the entropy temperature (ARsample's ``sample``, paper Eq. 1-2). ``greedy`` (B, 1)
    marks samples with a zero base temperature, whose result is one-hot on the most likely
    token; pass None when there are none (decided on the host, so no device sync).
    """
    cond, uncond = logits if isinstance(logits, tuple) else (logits, None)
    logits = apply_cfg(cond, uncond, settings.cfg_scale, cfg_active)
    h_model = entropy(logits)
    base = base_temperature if logits.dim() == 2 else base_temperature.reshape(
        base_temperature.shape[0], *([1] * (logits.dim() - 2)), 1)
    cfg = settings.entropy
    if cfg is None:
        temp = base
        filtered = filter_top_k_top_p(logits / temp.clamp_min(1e-5), settings.top_k, settings.top_p)
        probs = filtered.softmax(-1)
    else:
        filtered = filter_top_k_top_p(logits, settings.top_k, settings.top_p)
        # Without active filters the filtered logits are the raw ones: reuse their entropy.
        h = h_model if cfg.source == "raw" or filtered is logits else entropy(filtered)
        temp = base * cfg.temperature(h).unsqueeze(-1)
        probs = (filtered / temp.clamp_min(1e-5)).softmax(-1)
    if greedy is not None:
        mask = greedy.reshape(greedy.shape[0], *([1] * (probs.dim() - 1)))
        probs = torch.where(mask, _one_hot_argmax(probs), probs)
    return TokenDistribution(probs, h_model, temp.squeeze(-1).expand(h_model.shape))


def _one_hot_argmax(probs: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(probs).scatter_(-1, probs.argmax(-1, keepdim=True), 1.0)
