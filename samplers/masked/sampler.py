"""Masked (MaskGIT / MUSE / aMUSEd / Meissonic) decoding with the entropy temperature.

Every position starts at the model's ``mask_id``; each of S steps re-predicts the whole grid and
commits the most confident part of it. One step s (reference: diffusers ``AmusedScheduler.step``
after ``AmusedPipeline``'s guidance; ARsample's Meissonic ``Scheduler.step`` for the entropy parts):

1. the predictor's logits (B, N, V) for cond and uncond; guidance ``uncond + g·(cond − uncond)``
   when ``cfg_scale`` g > 1 (the pipelines' form and switch);
2. top-k / top-p (``settings``; the reference has top-k only, on the guided logits);
3. the distribution (``token_distribution``): plain softmax, or with "+Prob." softmax(l / T(H)),
   T(H) = T0·exp(−H/α) + θ per position (``settings.entropy``), H of the filtered distribution;
   the base ``temperature`` multiplies either (1 in the references);
4. a candidate drawn at **every** position (B·N draws, the exponential race that
   ``torch.multinomial(probs, 1, generator=g)`` computes); known positions keep their token;
5. unless it is the last step: n = clip(floor(N·cos(π/2·(s+1)/S)), 1, #masked − 1) per sample;
   confidence c = log(max(p(candidate), 1e−20)) + τ_s·G, G = −log(max(−log(max(u, 1e−20)), 1e−20)),
   u ~ U(0, 1) (B, N) from the same generator; with "+Masking" the noise is (τ_s·T(H))·G, T(H) the
   entropy map of step 3's H (without the base temperature). Known positions get
   p = float32 max (so log 88.7) plus their noise, as in the reference;
6. the positions whose confidence is below the (n+1)-th smallest are masked again
   (``c < sort(c)[n]``: exactly n unless there are ties, as the reference).

The generator is consumed in the reference order: per step the (B·N, V) draw, then (except at the
last step) the (B, N) uniforms. So with "+Prob." and "+Masking" off, the tokens equal the
reference scheduler's for the same logits and seed; with both on (and top-p off, temperature 1,
the "meissonic" preset) they equal ARsample's released Meissonic scheduler. "+Prob." and
"+Masking" are independent switches (``MaskedOptions``); the released code only has both together.

Maps: each token's entropy (of the guided, unfiltered distribution, nats) and temperature (the one
its candidate was drawn with) are those of the step at which it was committed (not masked again).
Progress: after every step the callback gets ``SamplingState(done=step, total=steps, tokens,
known)``, ``tokens`` holding the committed tokens and the current candidates elsewhere (valid
token ids, never ``mask_id``); it may raise to cancel between steps. No host-device sync until
``DecodeRun.finish``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol

import torch

from ...errors import SamplingError
from ..distribution import TokenDistribution, token_distribution
from ..entropy import entropy
from ..layout import TokenLayout
from ..logits import apply_cfg, filter_top_k_top_p, require_finite
from ..protocols import MaskedPredictor, SamplingState, StepCallback
from ..result import SamplingResult
from ..rng import sample_categorical
from ..run import DecodeRun
from ..settings import SamplerSettings
from .schedule import MASK_SCHEDULES, choice_temperatures, mask_lengths

_FLOAT32_MAX = torch.finfo(torch.float32).max


class MaskedModel(Protocol):
    """What the masked sampler drives: a model that binds a condition into a ``MaskedPredictor``.

    ``token_layout`` (optional): the grid ((h, w),) of the N image tokens, for the result's maps.
    """

    device: torch.device

    def start_session(self, cond: Any, guidance: bool) -> MaskedPredictor:
        ...


@dataclass(frozen=True)
class MaskedOptions:
    """How a masked run is scheduled, and where the entropy temperature applies.

    ``steps``: forward passes (aMUSEd 12, Meissonic 48 in its pipeline, 64 in the paper).
    ``schedule``: "cosine" (default) or "linear" (tokens left masked after each step).
    ``choice_temperature``: (start, end) of the annealed Gumbel scale τ, (2, 0) as the references.
    ``prob`` ("+Prob."): the entropy temperature on the token logits before the draw.
    ``masking`` ("+Masking"): the entropy temperature on the Gumbel term of the re-masking confidence.
    Both apply only when ``SamplerSettings.entropy`` gives the entropy map; without it the run is the
    plain reference loop whatever they say. Both on (the default) is ARsample's released sampler.
    """

    steps: int = 12
    schedule: str = "cosine"
    choice_temperature: tuple[float, float] = (2.0, 0.0)
    prob: bool = True
    masking: bool = True

    def __post_init__(self):
        object.__setattr__(self, "choice_temperature", tuple(float(t) for t in self.choice_temperature))
        if self.schedule not in MASK_SCHEDULES:
            raise SamplingError(f"Unknown mask schedule '{self.schedule}'. Known: {', '.join(MASK_SCHEDULES)}.")
        if len(self.choice_temperature) != 2:
            raise SamplingError(f"choice_temperature is (start, end); got {self.choice_temperature}.")
        require_finite(choice_temperature=list(self.choice_temperature))
        if min(self.choice_temperature) < 0:
            raise SamplingError(f"The choice temperature must be ≥ 0 at both ends; got {self.choice_temperature}.")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise SamplingError(f"A masked run needs at least 1 step; got steps={self.steps}.")


@torch.no_grad()
def sample_masked(model: MaskedModel, cond: Any, settings: SamplerSettings, *, steps: int | None = None,
                  options: MaskedOptions = MaskedOptions(), seed: int = 0,
                  callback: StepCallback | None = None) -> SamplingResult:
    """Decode every position of the grid in ``steps`` (default ``options.steps``) masked steps.

    Returns ``SamplingResult`` with tokens (B, N) int64 in raster order and float32 (B, N) entropy /
    temperature maps (see the module docstring). Randomness comes only from a generator seeded with
    ``seed`` on the predictor's device. Raises SamplingError for bad settings (steps < 1 or more
    steps than tokens, a ``mask_id`` inside the vocabulary, ``cfg_interval`` set, the usual token
    settings) and at the end if the logits were not finite.
    """
    steps = options.steps if steps is None else steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise SamplingError(f"A masked run needs at least 1 step; got steps={steps}.")
    if settings.cfg_interval >= 0:
        raise SamplingError("cfg_interval does not apply to masked sampling (every step re-predicts the whole "
                            "grid); leave it at -1.")
    predictor = model.start_session(cond, guidance=settings.guided)
    batch, total, vocab = predictor.batch_size, predictor.num_image_tokens, predictor.vocab_size
    mask_id, device = int(predictor.mask_id), predictor.device
    if steps > total:
        raise SamplingError(f"{steps} steps is more than the {total} image tokens; a masked run commits at least "
                            f"one token per step, so use at most {total} steps.")
    if 0 <= mask_id < vocab:
        raise SamplingError(f"The mask token id {mask_id} lies inside the vocabulary of {vocab} predicted tokens; "
                            f"the model must predict real tokens only.")
    run = DecodeRun(settings, batch=batch, total=total, vocab=vocab, seed=seed, device=device,
                    layout=_layout(model, total), callback=callback)
    ent = settings.entropy
    use_prob = ent is not None and options.prob
    use_masking = ent is not None and options.masking
    keep = mask_lengths(total, steps, options.schedule)
    taus = choice_temperatures(steps, *options.choice_temperature, device=device)
    tokens = torch.full((batch, total), mask_id, dtype=torch.long, device=device)
    unknown = torch.ones(batch, total, dtype=torch.bool, device=device)
    poison = torch.zeros(batch, total, dtype=torch.float32, device=device)  # NaN where a logit was ever not finite
    for step in range(steps):
        logits = predictor.predict(tokens, step, steps)
        run.passes += 1
        guided = apply_cfg(logits[0], logits[1], settings.cfg_scale, settings.guided)
        dist, noise_scale = _step_distribution(guided, settings, run, use_prob, use_masking)
        poison += dist.model_entropy * 0
        cand = sample_categorical(dist.probs.reshape(batch * total, vocab), run.generator).view(batch, total)
        cand = torch.where(unknown, cand, tokens)
        if step == steps - 1:
            remask = torch.zeros_like(unknown)
        else:
            remask = _remask(cand, unknown, dist.probs, keep[step], taus[step], noise_scale, run.generator)
        committed = unknown & ~remask
        run.tokens[:, :total] = cand
        run.entropy[:, :total] = torch.where(committed, dist.model_entropy, run.entropy[:, :total])
        run.temperature[:, :total] = torch.where(committed, dist.temperature, run.temperature[:, :total])
        tokens = torch.where(remask, mask_id, cand)
        unknown = remask
        if callback is not None:
            callback(SamplingState(step + 1, steps, run.tokens[:, :total], ~unknown))
    run.entropy[:, :total] += poison
    return run.finish(steps=steps)


def _step_distribution(guided: torch.Tensor, settings: SamplerSettings, run: DecodeRun, use_prob: bool,
                       use_masking: bool) -> tuple[TokenDistribution, torch.Tensor | None]:
    """The draw distribution of guided logits (B, N, V) and the "+Masking" map T(H) (B, N) or None.

    "+Prob." goes through ``token_distribution``'s entropy path; without it the plain path (base
    temperature, then filters). The masking map is the same T(H) as "+Prob." would use: H of the
    filtered logits (or of the raw ones for a "raw" entropy source), the base temperature left out.
    """
    ent = settings.entropy
    inner = replace(settings, cfg_scale=1.0, cfg_interval=-1, entropy=ent if use_prob else None)
    dist = token_distribution(guided, inner, run.base_temperature, False, run.greedy)
    if not use_masking:
        return dist, None
    filters_on = settings.top_k > 0 or settings.top_p < 1.0
    if ent.source == "raw" or not filters_on:
        h = dist.model_entropy
    else:
        h = entropy(filter_top_k_top_p(guided, settings.top_k, settings.top_p))
    return dist, ent.temperature(h)


def _remask(cand: torch.Tensor, unknown: torch.Tensor, probs: torch.Tensor, keep: int, tau: torch.Tensor,
            noise_scale: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
    """(B, N) bool: the positions to mask again after this step (reference ``mask_by_random_topk``).

    ``keep`` is the schedule's count, clipped here per sample to [1, #unknown − 1] (device ops, no sync);
    ``tau`` the step's choice temperature (0-dim); ``noise_scale`` the "+Masking" map or None.
    """
    count = torch.clamp(torch.minimum(unknown.sum(-1, keepdim=True) - 1, torch.full_like(cand[:, :1], keep)), min=1)
    chosen = probs.gather(-1, cand[..., None])[..., 0]
    chosen = torch.where(unknown, chosen, _FLOAT32_MAX)
    uniform = torch.empty(cand.shape, dtype=torch.float32, device=cand.device).uniform_(0, 1, generator=generator)
    gumbel = -torch.log((-torch.log(uniform.clamp(1e-20))).clamp(1e-20))
    scale = tau if noise_scale is None else tau * noise_scale
    confidence = torch.log(chosen.clamp(1e-20)) + scale * gumbel
    cut = torch.sort(confidence, dim=-1).values.gather(1, count)
    return confidence < cut


def _layout(model, total: int) -> TokenLayout:
    """``model.token_layout`` when it covers the N tokens, else one row of N."""
    scales = getattr(model, "token_layout", None)
    layout = TokenLayout(tuple(tuple(s) for s in scales)) if scales else None
    return layout if layout is not None and layout.num_tokens == total else TokenLayout(((1, total),))


