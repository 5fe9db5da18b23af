"""Draft tokens of speculative Jacobi decoding: new draft positions, and coupled draws.

Coupled drafting (MC-SJD, arXiv 2510.24211) draws every sample at absolute position t
as argmax(log p + G_t) with Gumbel noise G_t fixed per (sample, position) across
passes, so a draft stops changing once its context stops changing.
"""

from __future__ import annotations

import torch

from ..rng import sample_categorical

DRAFT_INITS = ("random", "repeat", "sample-left")


class CoupledNoise:
    """Gumbel noise fixed per (sample, absolute position), drawn the first time a position needs it.

    Positions are drawn in increasing order, each for the whole batch, so the stream a seed
    gives is independent of how the passes happen to cut the sequence.
    """

    def __init__(self, gen: torch.Generator, batch: int, vocab: int, device):
        self.gen, self.shape, self.device = gen, (batch, vocab), device
        self.noise: dict[int, torch.Tensor] = {}

    def at(self, firsts: list[int], length: int) -> torch.Tensor:
        """Noise (B, length, V) for sample b at positions firsts[b] .. firsts[b] + length - 1."""
        lo, hi = min(firsts), max(firsts) + length
        for t in range(lo, hi):
            if t not in self.noise:
                u = torch.rand(self.shape, generator=self.gen, device=self.device).clamp_(1e-20, 1.0)
                self.noise[t] = -torch.log(-torch.log(u))
        if lo + length == hi:  # every sample at the same positions
            return torch.stack([self.noise[t] for t in range(lo, hi)], dim=1)
        table = torch.stack([self.noise[t] for t in range(lo, hi)], dim=1)  # (B, P, V)
        offsets = torch.tensor(firsts, device=self.device)[:, None] - lo + torch.arange(length, device=self.device)
        return table.gather(1, offsets[..., None].expand(-1, -1, table.shape[-1]))

    def forget_before(self, position: int) -> None:
        for t in [t for t in self.noise if t < position]:
            del self.noise[t]


def draw(probs: torch.Tensor, gen: torch.Generator, noise: CoupledNoise | None, firsts: list[int]) -> torch.Tensor:
    """One token per (sample, position) of probs (B, L, V); coupled draws use the positions' fixed noise."""
    if noise is None:
        return sample_categorical(probs, gen)
    return (probs.clamp_min(1e-30).log() + noise.at(firsts, probs.shape[1])).argmax(-1)


def new_drafts(kind: str, count: int, left: torch.Tensor, last_p: torch.Tensor, vocab: int, gen: torch.Generator,
               noise: CoupledNoise | None, firsts: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` new drafts per sample (B, count) and their draft distributions (B, count, V).

    ``left`` (B,): the token left of the first new position (``repeat`` copies it); ``last_p``
    (B, V): the last predicted distribution (``sample-left`` draws from it); ``firsts``: each
    sample's absolute position of the first new draft (coupled noise).
    """
    batch = left.shape[0]
    if kind == "random":
        q = torch.full((batch, count, vocab), 1.0 / vocab, device=left.device)
        return draw(q, gen, noise, firsts), q
    if kind == "sample-left":
        q = last_p[:, None].expand(batch, count, vocab)
        return draw(q, gen, noise, firsts), q
    d = left[:, None].expand(batch, count)
    q = torch.zeros(batch, count, vocab, device=left.device).scatter_(-1, d[..., None], 1.0)
    return d.contiguous(), q
