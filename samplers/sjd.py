"""Speculative Jacobi Decoding (SJD, arXiv 2410.01699) with entropy-aware acceptance (arXiv 2510.09012)
and coupled drafts (MC-SJD, arXiv 2510.24211).

Each forward pass feeds the last committed token plus up to ``window - 1`` draft
tokens, verifies all drafts at once against the model's new distributions, and
commits the accepted prefix plus one more token (so every pass commits ≥ 1):

- draft d at a position with target p (this pass) and draft distribution q
  (what d was drawn from): accept if r ≤ min(1, p(d)/q(d)), r ~ U(0, 1);
- at the first rejection the token is drawn from norm(max(0, p − q)); if all
  drafts pass, a bonus token is drawn from the next position's p;
- positions after the first rejection keep this pass's fresh samples as their
  next drafts (Jacobi iteration); new positions entering the window are
  initialised (random, repeat the left neighbour, or sampled from the last
  distribution); rejected cache entries are truncated, never recomputed.

Acceptance rules: ``exact`` is the standard test and lossless (the output
distribution equals plain AR sampling's). ``entropy`` (the paper's rule as
reconstructed: r̃ = s·(0.5 + (r − 0.5)(1 − H/λ)), s = clamp(H/e, floor, 1)),
``entropy-scale`` (the released code: r̃ = r·clamp(H/e, floor, 1)) and
``constant`` (r̃ = c·r) accept more often and are lossy. H is the entropy of
the guided model distribution at that position.

Coupled drafting draws every fresh sample at absolute position t as
argmax(log p + G_t) with Gumbel noise G_t fixed for t across passes, so a
draft stops changing once its context stops changing. Acceptance tests and
residual draws use independent randomness, which keeps ``exact`` lossless.

The entropy temperature composes: p and q are the tempered distributions, a
deterministic function of the context, so ``exact`` is exact for the tempered
target.

Batches: all samples share one KV cache length, so each pass commits, for every
sample, as many tokens as the sample that accepted the fewest (the others'
extra accepted tokens are dropped and re-drafted; this costs speed, never
correctness). Sample images one at a time for the fewest forward passes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import SamplingError
from .ar import StepCallback
from .distribution import token_distribution
from .interface import ARModel
from .logits import require_finite
from .result import SamplingResult, SamplingStats, entropy_mean_checked, non_finite_error
from .rng import make_generator, sample_categorical
from .settings import SamplerSettings

ACCEPTANCE_RULES = ("exact", "entropy", "entropy-scale", "constant")
LOSSLESS_RULES = ("exact",)
DRAFT_INITS = ("random", "repeat", "sample-left")


@dataclass(frozen=True)
class SJDSettings:
    """Speculative Jacobi decoding options (on top of SamplerSettings)."""

    window: int = 16
    acceptance: str = "exact"
    init: str = "repeat"
    coupled: bool = False
    entropy_e: float = 8.0  # e of the entropy rules (nats at which the scale reaches 1)
    entropy_lambda: float = 16.0  # λ of the 'entropy' rule's noise compression
    scale_floor: float = 0.05  # lower bound of the entropy scale
    constant: float = 0.5  # c of the 'constant' rule

    def __post_init__(self):
        require_finite(entropy_e=self.entropy_e, entropy_lambda=self.entropy_lambda, scale_floor=self.scale_floor,
                       constant=self.constant)
        if self.window < 1:
            raise SamplingError(f"The Jacobi window must be ≥ 1 token; got {self.window}.")
        if self.acceptance not in ACCEPTANCE_RULES:
            raise SamplingError(f"Unknown acceptance rule '{self.acceptance}'. Known: {', '.join(ACCEPTANCE_RULES)}.")
        if self.init not in DRAFT_INITS:
            raise SamplingError(f"Unknown draft initialisation '{self.init}'. Known: {', '.join(DRAFT_INITS)}.")
        if not 0 < self.constant <= 1:
            raise SamplingError(f"The constant acceptance factor must be in (0, 1]; got {self.constant}.")
        if self.entropy_e <= 0 or self.entropy_lambda <= 0 or not 0 <= self.scale_floor <= 1:
            raise SamplingError("entropy e and λ must be > 0 and the scale floor in [0, 1].")

    @property
    def lossless(self) -> bool:
        return self.acceptance in LOSSLESS_RULES


def acceptance_threshold(r: torch.Tensor, h: torch.Tensor, s: SJDSettings) -> torch.Tensor:
    """The rule's transformed uniform draw r̃ (accept a draft when r̃ ≤ min(1, p/q))."""
    if s.acceptance == "exact":
        return r
    if s.acceptance == "constant":
        return r * s.constant
    scale = (h / s.entropy_e).clamp(s.scale_floor, 1.0)
    if s.acceptance == "entropy-scale":
        return r * scale
    return scale * (0.5 + (r - 0.5) * (1.0 - h / s.entropy_lambda).clamp(min=0.0))


class _Gumbel:
    """Gumbel noise fixed per (sample, absolute position), drawn when a position first needs it."""

    def __init__(self, gen, batch: int, vocab: int, device):
        self.gen, self.shape, self.device = gen, (batch, vocab), device
        self.noise: dict[int, torch.Tensor] = {}

    def at(self, positions: range) -> torch.Tensor:
        for t in positions:
            if t not in self.noise:
                u = torch.rand(self.shape, generator=self.gen, device=self.device).clamp_(1e-20, 1.0)
                self.noise[t] = -torch.log(-torch.log(u))
        return torch.stack([self.noise[t] for t in positions], dim=1)

    def forget_before(self, position: int) -> None:
        for t in [t for t in self.noise if t < position]:
            del self.noise[t]


def _draw(probs: torch.Tensor, gen, gumbel: _Gumbel | None, first_pos: int) -> torch.Tensor:
    """One token per row of probs (B, L, V); coupled draws use the positions' fixed noise."""
    if gumbel is None:
        return sample_categorical(probs, gen)
    noise = gumbel.at(range(first_pos, first_pos + probs.shape[1]))
    return (probs.clamp_min(1e-30).log() + noise).argmax(-1)


@torch.no_grad()
def sample_sjd(model: ARModel, cond: Any, settings: SamplerSettings, sjd: SJDSettings = SJDSettings(), *,
               num_tokens: int | None = None, seed: int = 0, generator: torch.Generator | None = None,
               callback: StepCallback | None = None) -> SamplingResult:
    """Sample image tokens with speculative Jacobi decoding (see the module docstring)."""
    total = num_tokens or model.num_image_tokens
    started = time.perf_counter()
    session = model.start_session(cond, guidance=settings.guided, max_new_tokens=total)
    batch, vocab = session.batch_size, session.vocab_size
    settings.validate(vocab, batch)
    device = model.device
    gen = generator or make_generator(seed, device)
    base_t = settings.temperature_column(batch, device)
    greedy = settings.greedy_rows(batch, device)
    gumbel = _Gumbel(gen, batch, vocab, device) if sjd.coupled else None

    def distribution(logits, first_pos):
        rows = logits if logits.dim() == 3 else logits[:, None]
        # Guidance per position: a pass may straddle cfg_interval.
        guided = settings.cfg_active_count(first_pos, rows.shape[1])
        return token_distribution(rows, settings, base_t, guided, session.guided, greedy)

    tokens = torch.empty(batch, total, dtype=torch.long, device=device)
    ent = torch.empty(batch, total, dtype=torch.float32, device=device)
    temps = torch.empty(batch, total, dtype=torch.float32, device=device)

    first = distribution(session.prefill(), 0)
    tokens[:, :1] = _draw(first.probs, gen, gumbel, 0)
    ent[:, :1], temps[:, :1] = first.model_entropy, first.temperature
    committed = 1
    passes, drafted, accepted = 1, 0, 0
    drafts = torch.empty(batch, 0, dtype=torch.long, device=device)
    draft_q = torch.empty(batch, 0, vocab, device=device)
    last_p = first.probs  # (B, 1, V): distribution of the position just committed
    if callback is not None:
        callback(committed, total, tokens[:, :committed])

    while committed < total:
        m = min(sjd.window - 1, total - committed - 1)  # drafts this pass
        drafts, draft_q = drafts[:, :m], draft_q[:, :m]
        if drafts.shape[1] < m:
            new_d, new_q = _init_drafts(sjd.init, m - drafts.shape[1], tokens[:, committed - 1], drafts, last_p,
                                        vocab, gen, gumbel, committed + drafts.shape[1])
            drafts = torch.cat([drafts, new_d], 1)
            draft_q = torch.cat([draft_q, new_q], 1)
        session.truncate(committed - 1)
        feed = torch.cat([tokens[:, committed - 1:committed], drafts], 1)
        logits = session.extend(torch.cat([feed, feed]) if session.guided else feed)
        passes += 1
        dist = distribution(logits, committed)  # (B, m+1, V) for positions committed..committed+m
        p = dist.probs
        fresh = _draw(p, gen, gumbel, committed)  # a sample at every position (bonus and Jacobi drafts)
        k = 0
        if m > 0:
            p_d = p[:, :m].gather(-1, drafts[..., None])[..., 0]
            q_d = draft_q.gather(-1, drafts[..., None])[..., 0]
            ratio = (p_d / q_d.clamp_min(1e-30)).clamp(max=1.0)
            r = torch.rand(batch, m, generator=gen, device=device)
            ok = acceptance_threshold(r, dist.model_entropy[:, :m], sjd) <= ratio
            run = ok.long().cumprod(1).sum(1)  # accepted prefix per sample
            # The pass's only host sync: how far every sample got, counts for the stats, and whether the
            # logits were finite (so an fp16 overflow stops here, not after the whole image).
            bad = (~torch.isfinite(dist.model_entropy)).sum()
            k, n_acc, n_seen, n_bad = torch.stack([run.min(), run.sum(), (run + 1).clamp(max=m).sum(), bad]).tolist()
            if n_bad:
                raise non_finite_error(n_bad, dist.model_entropy.numel())
            accepted += n_acc
            drafted += n_seen
        # Token at position committed+k: the draft where this sample accepted it, else residual/bonus.
        if k < m:
            residual = (p[:, k] - draft_q[:, k]).clamp_min(0.0)
            mass = residual.sum(-1, keepdim=True)
            residual = torch.where(mass > 1e-12, residual / mass.clamp_min(1e-30), p[:, k])
            resampled = sample_categorical(residual, gen)
            token_k = torch.where(run > k, drafts[:, k], resampled)
        else:
            token_k = fresh[:, m]
        new = torch.cat([drafts[:, :k], token_k[:, None]], 1)
        tokens[:, committed:committed + k + 1] = new
        ent[:, committed:committed + k + 1] = dist.model_entropy[:, :k + 1]
        temps[:, committed:committed + k + 1] = dist.temperature[:, :k + 1]
        committed += k + 1
        # Jacobi carry: this pass's samples after the new last token become the next drafts.
        drafts, draft_q = fresh[:, k + 1:], p[:, k + 1:]
        last_p = p[:, -1:]
        if gumbel is not None:
            gumbel.forget_before(committed)
        if callback is not None:
            callback(committed, total, tokens[:, :committed])

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    stats = SamplingStats(forward_passes=passes, seconds=time.perf_counter() - started, batch_size=batch,
                          num_tokens=total, mean_entropy=entropy_mean_checked(ent))
    stats.extra = {"tokens per forward": round(total / passes, 3),
                   "acceptance rate": round(accepted / drafted, 3) if drafted else 0.0,
                   "rule": sjd.acceptance + (" (lossless)" if sjd.lossless else " (lossy)"),
                   "coupled": sjd.coupled}
    return SamplingResult(tokens, ent, temps, stats)


def _init_drafts(kind: str, count: int, last_committed: torch.Tensor, drafts: torch.Tensor, last_p: torch.Tensor,
                 vocab: int, gen, gumbel: _Gumbel | None, first_pos: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` new drafts (B, count) and their draft distributions (B, count, V)."""
    batch, device = last_committed.shape[0], last_committed.device
    if kind == "random":
        q = torch.full((batch, count, vocab), 1.0 / vocab, device=device)
        return _draw(q, gen, gumbel, first_pos), q
    if kind == "sample-left":
        q = last_p.expand(batch, count, vocab)
        return _draw(q, gen, gumbel, first_pos), q
    left = drafts[:, -1] if drafts.shape[1] else last_committed
    d = left[:, None].expand(batch, count)
    q = torch.zeros(batch, count, vocab, device=device).scatter_(-1, d[..., None], 1.0)
    return d.contiguous(), q


__all__ = ["SJDSettings", "sample_sjd", "acceptance_threshold", "ACCEPTANCE_RULES", "LOSSLESS_RULES",
           "DRAFT_INITS"]
