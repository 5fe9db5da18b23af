"""Speculative Jacobi Decoding (SJD, arXiv 2410.01699) with entropy-aware acceptance (arXiv 2510.09012)
and coupled drafts (MC-SJD, arXiv 2510.24211).

Each forward pass feeds every sample's last committed token plus up to
``window - 1`` draft tokens, verifies all drafts at once against the model's new
distributions, and commits the accepted prefix plus one more token (so every
pass commits ≥ 1 token per sample):

- drafting: drafts carried over from the last pass (Jacobi iteration: a pass's
  samples after the new last token become the next drafts) plus new positions
  entering the window (random, repeat the left neighbour, or sampled from the
  last distribution; ``drafts.py``);
- verification: the acceptance rule (``acceptance.py``) finds each sample's
  accepted prefix; at its first rejection the token is drawn from
  norm(max(0, p − q)); if every draft passed, a bonus token from the next p;
- commit: accepted tokens are written, rejected cache entries are truncated,
  never recomputed.

The batch is ragged: each sample keeps its own cache length and advances by its
own accepted length, so a batch needs about as many passes as its slowest sample
alone. Samples that are done are still fed (padding, never committed) until the
last one finishes.

The entropy temperature composes: p and q are the tempered distributions, a
deterministic function of the context, so ``exact`` is exact for the tempered
target. Settings that depend on the position (``cfg_interval``) are evaluated
per position inside a pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ...errors import SamplingError
from ..protocols import NextTokenModel, StepCallback
from ..result import SamplingResult, non_finite_error
from ..rng import sample_categorical
from ..run import DecodeRun
from ..settings import SamplerSettings
from .acceptance import ACCEPTANCE_RULES, LOSSLESS_RULES, AcceptanceRule, acceptance_threshold, residual
from .drafts import DRAFT_INITS, CoupledNoise, draw, new_drafts
from .layout import run_layout


@dataclass(frozen=True)
class SJDSettings:
    """Speculative Jacobi decoding options (on top of SamplerSettings); the rule constants go to ``rule``."""

    window: int = 16
    acceptance: str = "exact"
    init: str = "repeat"
    coupled: bool = False
    entropy_e: float = 8.0  # e of the entropy rules (nats at which the scale reaches 1)
    entropy_lambda: float = 16.0  # λ of the 'entropy' rule's noise compression
    scale_floor: float = 0.05  # lower bound of the entropy scale
    constant: float = 0.5  # c of the 'constant' rule

    def __post_init__(self):
        if self.window < 1:
            raise SamplingError(f"The Jacobi window must be ≥ 1 token; got {self.window}.")
        if self.init not in DRAFT_INITS:
            raise SamplingError(f"Unknown draft initialisation '{self.init}'. Known: {', '.join(DRAFT_INITS)}.")
        self.rule  # validates the rule and its constants

    @property
    def rule(self) -> AcceptanceRule:
        return AcceptanceRule(self.acceptance, self.entropy_e, self.entropy_lambda, self.scale_floor, self.constant)

    @property
    def lossless(self) -> bool:
        return self.acceptance in LOSSLESS_RULES


class _Drafts:
    """Per-sample draft state: carried drafts (B, W-1), their distributions, how many are real."""

    def __init__(self, batch: int, width: int, vocab: int, device):
        self.tokens = torch.zeros(batch, width, dtype=torch.long, device=device)
        self.q = torch.zeros(batch, width, vocab, device=device)
        self.count = [0] * batch


@torch.no_grad()
def sample_sjd(model: NextTokenModel, cond: Any, settings: SamplerSettings, sjd: SJDSettings = SJDSettings(), *,
               num_tokens: int | None = None, seed: int = 0, callback: StepCallback | None = None) -> SamplingResult:
    """Sample image tokens with speculative Jacobi decoding (see the module docstring).

    Same arguments and errors as ``sample_ar``; the stats add tokens per forward pass and
    the acceptance rate. With ``window`` 1 it is plain AR sampling, token for token.
    """
    total = num_tokens or model.num_image_tokens
    session = model.start_session(cond, guidance=settings.guided, max_new_tokens=total)
    batch, vocab, device = session.batch_size, session.vocab_size, session.device
    run = DecodeRun(settings, batch=batch, total=total, vocab=vocab, seed=seed, device=device,
                    layout=run_layout(model, total), callback=callback, pad=sjd.window)
    noise = CoupledNoise(run.generator, batch, vocab, device) if sjd.coupled else None
    rule = sjd.rule

    zeros = torch.zeros(batch, 1, dtype=torch.long, device=device)
    first = run.distribution(tuple(None if x is None else x[:, None] for x in session.prefill()),
                             settings.cfg_active_at(zeros))
    run.tokens[:, :1] = draw(first.probs, run.generator, noise, [0] * batch)
    run.entropy[:, :1], run.temperature[:, :1] = first.model_entropy, first.temperature
    run.passes = 1
    committed = [1] * batch
    drafts = _Drafts(batch, sjd.window - 1, vocab, device)
    last_p = first.probs[:, 0]  # (B, V): the latest predicted distribution, for 'sample-left'
    counts = {"drafted": 0, "accepted": 0}
    run.report(min(committed), committed=committed)

    while min(committed) < total:
        wanted = [min(sjd.window - 1, total - c - 1) if c < total else 0 for c in committed]
        # The pass's per-sample host state, copied to the device once.
        c_dev = torch.tensor(committed, device=device)
        want_dev = torch.tensor(wanted, device=device)
        active = c_dev < total
        _top_up_drafts(drafts, wanted, committed, c_dev, run, sjd.init, last_p, vocab, noise)
        width = max(wanted)
        session.truncate([c - 1 for c in committed])
        last = run.tokens.gather(1, (c_dev - 1)[:, None])
        logits = session.extend(torch.cat([last, drafts.tokens[:, :width]], 1))
        run.passes += 1
        positions = c_dev[:, None] + torch.arange(width + 1, device=device)  # what each fed column predicts
        dist = run.distribution(logits, settings.cfg_active_at(positions))
        fresh = draw(dist.probs, run.generator, noise, committed)  # a sample at every position
        accepted = _verify(dist, drafts, width, want_dev, active, rule, run, counts)
        _commit(run, dist, drafts, fresh, accepted, wanted, committed, positions, want_dev, active)
        last_p = dist.probs.gather(1, want_dev[:, None, None].expand(-1, 1, vocab))[:, 0]
        if noise is not None:
            noise.forget_before(min(committed))
        run.report(min(committed), committed=committed)

    drafted = counts["drafted"]
    return run.finish(**{"tokens per forward": round(total / run.passes, 3),
                         "acceptance rate": round(counts["accepted"] / drafted, 3) if drafted else 0.0,
                         "rule": sjd.acceptance + (" (lossless)" if sjd.lossless else " (lossy)"),
                         "coupled": sjd.coupled})


def _top_up_drafts(drafts: _Drafts, wanted: list[int], committed: list[int], c_dev: torch.Tensor, run: DecodeRun,
                   init: str, last_p: torch.Tensor, vocab: int, noise: CoupledNoise | None) -> None:
    """Give every sample ``wanted[b]`` drafts: keep the carried ones, start new positions after them."""
    drafts.count = [min(n, w) for n, w in zip(drafts.count, wanted)]
    width = max(wanted)
    needy = [n for n, w in zip(drafts.count, wanted) if w > 0]
    lo = min(needy) if needy else width  # first slot where some sample needs a new draft
    if lo >= width:
        return
    device = drafts.tokens.device
    have = torch.tensor(drafts.count, device=device)
    before = drafts.tokens.gather(1, (have - 1).clamp(min=0)[:, None])[:, 0]
    left = torch.where(have > 0, before, run.tokens.gather(1, c_dev[:, None] - 1)[:, 0])
    new_d, new_q = new_drafts(init, width - lo, left, last_p, vocab, run.generator, noise, [c + lo for c in committed])
    keep = (torch.arange(lo, width, device=device) < have[:, None])  # carried drafts win over new ones
    drafts.tokens[:, lo:width] = torch.where(keep, drafts.tokens[:, lo:width], new_d)
    drafts.q[:, lo:width] = torch.where(keep[..., None], drafts.q[:, lo:width], new_q)


def _verify(dist, drafts: _Drafts, width: int, want_dev: torch.Tensor, active: torch.Tensor, rule: AcceptanceRule,
            run: DecodeRun, counts: dict) -> list[int]:
    """Accepted drafts per sample. The pass's one host sync also checks the logits were finite."""
    if width == 0:
        return [0] * run.batch
    device = drafts.tokens.device
    d = drafts.tokens[:, :width]
    p_d = dist.probs[:, :width].gather(-1, d[..., None])[..., 0]
    q_d = drafts.q[:, :width].gather(-1, d[..., None])[..., 0]
    r = torch.rand(d.shape, generator=run.generator, device=device)
    want = want_dev[:, None]
    slots = torch.arange(width, device=device)
    accepted = rule.accepted_prefix(r, dist.model_entropy[:, :width], p_d, q_d, slots < want)
    checked = (torch.arange(width + 1, device=device) <= want) & active[:, None]
    bad = (~torch.isfinite(dist.model_entropy) & checked).sum()
    seen = (accepted + 1).clamp(max=want[:, 0]).sum()
    values = torch.cat([accepted, torch.stack([seen, bad])]).tolist()
    if values[-1]:
        raise non_finite_error(values[-1], int(checked.sum()))
    counts["accepted"] += sum(values[:-2])
    counts["drafted"] += values[-2]
    return values[:-2]


def _commit(run: DecodeRun, dist, drafts: _Drafts, fresh: torch.Tensor, accepted: list[int], wanted: list[int],
            committed: list[int], positions: torch.Tensor, want_dev: torch.Tensor, active: torch.Tensor) -> None:
    """Write each sample's accepted drafts plus one token, and carry this pass's samples as next drafts."""
    device, width = fresh.device, max(wanted)
    k = torch.tensor(accepted, device=device)
    if any(a < w for a, w, c in zip(accepted, wanted, committed) if c < run.total):
        # a rejected draft: its token comes from the residual norm(max(0, p − q)) at that position
        at = k.clamp(max=max(width - 1, 0))
        p_k = dist.probs.gather(1, at[:, None, None].expand(-1, 1, dist.probs.shape[-1]))[:, 0]
        q_k = drafts.q.gather(1, at[:, None, None].expand(-1, 1, drafts.q.shape[-1]))[:, 0]
        resampled = sample_categorical(residual(p_k, q_k), run.generator)
    else:
        resampled = fresh[:, 0]
    bonus = fresh.gather(1, want_dev[:, None])[:, 0]
    token_k = torch.where(k < want_dev, resampled, bonus)
    values = torch.cat([drafts.tokens[:, :width], token_k[:, None]], 1).scatter(1, k[:, None], token_k[:, None])
    write = (torch.arange(width + 1, device=device) <= k[:, None]) & active[:, None]
    for buffer, new in ((run.tokens, values), (run.entropy, dist.model_entropy), (run.temperature, dist.temperature)):
        buffer.scatter_(1, positions, torch.where(write, new, buffer.gather(1, positions)))
    # Jacobi carry: this pass's samples after the new last token become the next drafts.
    carry = (k[:, None] + 1 + torch.arange(drafts.tokens.shape[1], device=device)).clamp(max=width)
    drafts.tokens = fresh.gather(1, carry)
    drafts.q = dist.probs.gather(1, carry[..., None].expand(-1, -1, dist.probs.shape[-1]))
    for b, c in enumerate(committed):
        if c < run.total:
            drafts.count[b] = wanted[b] - accepted[b]
            committed[b] = c + accepted[b] + 1
        else:
            drafts.count[b] = 0


__all__ = ["SJDSettings", "sample_sjd", "acceptance_threshold", "ACCEPTANCE_RULES", "LOSSLESS_RULES",
           "DRAFT_INITS"]
