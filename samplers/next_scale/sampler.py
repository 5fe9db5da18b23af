"""Next-scale sampling (VAR, STAR): one forward pass per scale, every token of a scale drawn at once.

Per scale si of S (reference: FoundationVision/VAR ``autoregressive_infer_cfg``):

1. the session's logits (B, h·w, V) for cond and uncond;
2. guidance by the schedule (VAR: (1 + t)·cond − t·uncond with t = cfg·si/(S − 1));
3. the filter: VAR's own top-k / top-p rule (``filters.py``) or LlamaGen's;
4. the shared distribution function ``token_distribution`` on the B·h·w rows: the entropy
   temperature per token of the map ("+Prob.", entropy of the filtered logits by default, as
   everywhere in the pack), times the per-scale factor ("+Scale-wise", ``schedule.ScaleTemperature``),
   times the base temperature;
5. one draw per token from the run's seeded generator on the (B·h·w, V) probabilities (the
   exponential race, which is exactly what ``torch.multinomial(probs, 1, generator=g)`` computes, so
   with the entropy temperature off the tokens equal the reference's for the same seed: one draw per
   scale, in scale order, as the reference consumes its generator);
6. the session commits the tokens (f̂ update) and returns the next scale's logits.

VAR has no temperature: with ``temperature`` 1, no entropy temperature and no scale-wise factor,
step 4 is softmax(filtered logits), the reference's distribution. Progress: after each scale the
callback gets a ``SamplingState`` with ``done`` / ``total`` counted in scales and ``known`` marking
the tokens of the scales drawn so far; it may raise to cancel (between scales). No host-device sync
until ``finish``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol

import torch

from ...errors import SamplingError
from ..distribution import TokenDistribution, token_distribution
from ..entropy import entropy
from ..layout import TokenLayout
from ..logits import filter_top_k_top_p
from ..protocols import SamplingState, ScaleSession, StepCallback
from ..result import SamplingResult
from ..rng import sample_categorical
from ..run import DecodeRun
from ..settings import SamplerSettings
from .filters import filter_top_k_top_p_var
from .schedule import CFG_SCHEDULES, ScaleTemperature, guidance_on, guidance_weight

FILTER_RULES = ("var", "llamagen")


class ScaleModel(Protocol):
    """What the next-scale sampler drives: a model that opens scale sessions (a VAR bound to its VQ-VAE)."""

    vocab_size: int
    token_layout: tuple[tuple[int, int], ...]
    device: torch.device

    def start_session(self, cond: Any, guidance: bool) -> ScaleSession:
        ...


@dataclass(frozen=True)
class NextScaleOptions:
    """How the scales are guided, filtered and heated (see the module docstrings).

    ``cfg_schedule``: "linear" (VAR, default) or "constant". ``filter_rule``: "var" (default: VAR's
    top-p rule) or "llamagen". ``scale_temperature``: the "+Scale-wise" factor, None = off.
    """

    cfg_schedule: str = "linear"
    filter_rule: str = "var"
    scale_temperature: ScaleTemperature | None = None

    def __post_init__(self):
        if self.cfg_schedule not in CFG_SCHEDULES:
            raise SamplingError(f"Unknown guidance schedule '{self.cfg_schedule}'. Known: {', '.join(CFG_SCHEDULES)}.")
        if self.filter_rule not in FILTER_RULES:
            raise SamplingError(f"Unknown filter rule '{self.filter_rule}'. Known: {', '.join(FILTER_RULES)}.")


@torch.no_grad()
def sample_next_scale(model: ScaleModel, cond: Any, settings: SamplerSettings, *, seed: int = 0,
                      callback: StepCallback | None = None,
                      options: NextScaleOptions = NextScaleOptions()) -> SamplingResult:
    """Sample every scale of the model's pyramid for each condition; tokens (B, L) coarse to fine.

    ``settings.cfg_scale`` is the guidance amount of ``options.cfg_schedule`` (VAR's ``cfg`` for the
    linear ramp); ``cfg_interval`` does not apply (must be −1). Plain VAR sampling by default;
    ``settings.entropy`` adds the entropy temperature per token, ``options.scale_temperature`` the
    per-scale factor. Randomness comes only from a generator seeded with ``seed`` on the model's
    device. Raises SamplingError for bad settings, and at the end if the logits were not finite.
    """
    if settings.cfg_interval >= 0:
        raise SamplingError("cfg_interval does not apply to next-scale sampling (its guidance ramps over the "
                            "scales); leave it at -1.")
    guided = guidance_on(options.cfg_schedule, settings.cfg_scale)
    session = model.start_session(cond, guidance=guided)
    layout = TokenLayout(tuple(tuple(s) for s in session.scales))
    num_scales, total = len(layout.scales), layout.num_tokens
    batch = session.batch_size
    run = DecodeRun(settings, batch=batch, total=total, vocab=session.vocab_size, seed=seed, device=session.device,
                    layout=layout, callback=callback)
    factors = options.scale_temperature.factors_for(num_scales) if options.scale_temperature else [1.0] * num_scales
    columns = torch.arange(total, device=session.device)
    logits = session.first()
    run.passes = 1
    begin = 0
    for si, (h, w) in enumerate(layout.scales):
        end = begin + h * w
        cond_l, uncond_l = logits
        if uncond_l is not None:
            t = guidance_weight(options.cfg_schedule, settings.cfg_scale, si, num_scales)
            cond_l = (1 + t) * cond_l - t * uncond_l  # the reference's expression, in its order
        dist = _scale_distribution(cond_l, settings, options.filter_rule, run, factors[si])
        tokens = sample_categorical(dist.probs, run.generator).view(batch, h * w)
        run.tokens[:, begin:end] = tokens
        run.entropy[:, begin:end] = dist.model_entropy.view(batch, h * w)
        run.temperature[:, begin:end] = dist.temperature.view(batch, h * w)
        if callback is not None:
            known = (columns < end).expand(batch, total)
            callback(SamplingState(si + 1, num_scales, run.tokens[:, :total], known))
        if si + 1 < num_scales:
            logits = session.next(tokens)
            run.passes += 1
        elif hasattr(session, "commit"):
            session.commit(tokens)  # f̂ complete: the session can decode the final image
        begin = end
    return run.finish(scales=num_scales)


def _scale_distribution(guided: torch.Tensor, settings: SamplerSettings, rule: str, run: DecodeRun,
                        factor: float) -> TokenDistribution:
    """The distribution of one scale's guided logits (B, l, V), as (B·l, V) rows.

    ``token_distribution`` applies LlamaGen's filter itself; for VAR's rule the logits are filtered
    here first and reach it with filters off. Its entropy path then measures H on the filtered logits
    (the pack's default "filtered" source) exactly as it would have; the "raw" source and the recorded
    model entropy (of the guided, unfiltered logits) are computed here from the unfiltered rows.
    """
    batch, length, vocab = guided.shape
    rows = guided.reshape(batch * length, vocab)
    base = run.base_temperature.repeat_interleave(length, dim=0)
    if factor != 1.0:
        base = base * factor
    greedy = None if run.greedy is None else run.greedy.repeat_interleave(length, dim=0)
    inner = replace(settings, cfg_scale=1.0, cfg_interval=-1, top_k=0, top_p=1.0)
    filters_on = settings.top_k > 0 or settings.top_p < 1.0
    if not filters_on:
        return token_distribution(rows, inner, base, False, greedy)
    filtered = (filter_top_k_top_p_var if rule == "var" else filter_top_k_top_p)(rows, settings.top_k, settings.top_p)
    h_model = entropy(rows)
    cfg = settings.entropy
    if cfg is not None and cfg.source == "raw":
        # T from the unfiltered distribution, applied to the filtered logits (token_distribution's raw path).
        base = base * cfg.temperature(h_model).unsqueeze(-1)
        inner = replace(inner, entropy=None)
    dist = token_distribution(filtered, inner, base, False, greedy)
    return dist._replace(model_entropy=h_model)
