"""The model side of masked decoding for Meissonic (``samplers.protocols.MaskedPredictor``).

``MeissonicPredictor.predict(tokens)`` re-predicts the whole grid: tokens (B, N) with ``mask_id``
at unknown positions → logits (cond, uncond), each float32 (B, N, codebook). With guidance one
forward runs the rows [negative…; positive…] (the reference pipeline's order: its ``chunk(2)`` takes
the unconditional half first) and the pair comes back as (positive, negative).

The transformer also reads the step counter: the reference's scheduler counts ``timesteps`` down
N − 1 … 0 and the transformer multiplies it by 1000. The masked sampler passes ``predict(tokens, step,
num_steps)`` (→ timestep N − 1 − step); ``timestep=`` or the ``timestep`` attribute set it directly.

Source: MeissonFlow/Meissonic ``src/pipeline.py`` ``Pipeline.__call__`` (rows, micro-conditioning,
the timestep passed as ``tensor([t])``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import SamplingError
from .config import DEFAULT_MICRO_CONDS, MICRO_COND_VALUES
from .transformer import MeissonicTransformer


def micro_conditioning(width: int = 1024, height: int = 1024, crop_top: int = 0, crop_left: int = 0,
                       aesthetic: float = 6.0) -> tuple[float, ...]:
    """The reference pipeline's 5 values in its order: (width, height, crop[0], crop[1], aesthetic score)."""
    return (float(width), float(height), float(crop_top), float(crop_left), float(aesthetic))


@dataclass
class MeissonicCondition:
    """Text features for a batch: ``states`` (B, L, J) = CLIP ``hidden_states[-2]``, ``pooled`` (B, P) =
    CLIP ``text_embeds`` (projected pooled); the same for the negative prompt (B or 1 rows; None:
    no guidance possible); ``micro_conds`` (5,) or (B, 5) (default (1024, 1024, 0, 0, 6))."""

    states: torch.Tensor
    pooled: torch.Tensor
    neg_states: torch.Tensor | None = None
    neg_pooled: torch.Tensor | None = None
    micro_conds: torch.Tensor | tuple | None = None

    @property
    def batch_size(self) -> int:
        return int(self.states.shape[0])


class MeissonicPredictor:
    """A Meissonic transformer bound to one batch's condition and token grid (``MaskedPredictor``).

    ``grid`` (h, w): the token grid (64×64 for 1024 px). ``guidance``: run the negative rows too.
    Raises SamplingError when the condition's shapes disagree or guidance has no negative prompt.
    """

    def __init__(self, transformer: MeissonicTransformer, cond: MeissonicCondition, grid: tuple[int, int] = (64, 64),
                 guidance: bool = True, timestep: int = 0):
        self.transformer = transformer
        self.grid = (int(grid[0]), int(grid[1]))
        self.guidance = bool(guidance)
        self.timestep = timestep
        b = cond.batch_size
        if cond.pooled.shape[0] != b:
            raise SamplingError(f"pooled text has {cond.pooled.shape[0]} rows, hidden states {b}.")
        micro = torch.as_tensor(DEFAULT_MICRO_CONDS if cond.micro_conds is None else cond.micro_conds,
                                dtype=torch.float32)
        if micro.ndim == 1:
            micro = micro[None].expand(b, -1)
        if tuple(micro.shape) != (b, MICRO_COND_VALUES):
            raise SamplingError(f"micro-conditioning must be ({MICRO_COND_VALUES},) or ({b}, {MICRO_COND_VALUES}); "
                                f"got {tuple(micro.shape)}.")
        states, pooled = cond.states, cond.pooled
        if self.guidance:
            if cond.neg_states is None or cond.neg_pooled is None:
                raise SamplingError("Guidance needs the negative prompt's text features (hidden states and pooled); "
                                    "encode the negative (or empty) prompt, or turn guidance off.")
            ns, npool = cond.neg_states, cond.neg_pooled
            if ns.shape[0] == 1 and b > 1:
                ns, npool = ns.expand(b, *ns.shape[1:]), npool.expand(b, -1)
            if ns.shape[0] != b or npool.shape[0] != b:
                raise SamplingError(f"the negative prompt has {ns.shape[0]} rows; give 1 or {b}.")
            if ns.shape[1:] != states.shape[1:]:
                raise SamplingError(f"negative hidden states {tuple(ns.shape[1:])} and prompt hidden states "
                                    f"{tuple(states.shape[1:])} must have the same length and width.")
            states, pooled, micro = torch.cat([ns, states]), torch.cat([npool, pooled]), torch.cat([micro, micro])
        dev = transformer.device
        self._states, self._pooled, self._micro = states.to(dev), pooled.to(dev), micro.to(dev)
        self.batch_size = b
        self.vocab_size = transformer.config.codebook_size
        self.num_image_tokens = self.grid[0] * self.grid[1]
        self.mask_id = transformer.config.mask_id
        self.device = dev

    @torch.no_grad()
    def predict(self, tokens: torch.Tensor, step: int | None = None, num_steps: int | None = None,
                timestep: int | None = None):
        """tokens (B, N) int64 (``mask_id`` = unknown) at step ``step`` of ``num_steps`` (0-based; the reference's
        timestep is num_steps − 1 − step), or at an explicit ``timestep`` → (cond, uncond): float32
        (B, N, codebook) each; uncond None without guidance. SamplingError when tokens are not (B, h·w)."""
        if timestep is None and step is not None:
            timestep = int(num_steps) - 1 - int(step)
        b, n = self.batch_size, self.num_image_tokens
        if tuple(tokens.shape) != (b, n):
            raise SamplingError(f"tokens must be ({b}, {n}) for a {self.grid[0]}×{self.grid[1]} grid; got "
                                f"{tuple(tokens.shape)}.")
        grid = tokens.to(self.device).long().reshape(b, *self.grid)
        if self.guidance:
            grid = torch.cat([grid, grid])
        t = torch.tensor([self.timestep if timestep is None else timestep], device=self.device)
        logits = self.transformer(grid, self._states, self._pooled, self._micro, t)
        logits = logits.float().flatten(2).transpose(1, 2)  # (rows, N, codebook)
        if not self.guidance:
            return logits, None
        uncond, cond = logits.chunk(2)
        return cond, uncond


__all__ = ["MeissonicCondition", "MeissonicPredictor", "micro_conditioning"]
