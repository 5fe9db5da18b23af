"""Calibration of an entropy preset to a model's entropy scale: the ``embedded`` and ``embedded-var`` presets.

The published presets were tuned on LlamaGen's entropies (a 16,384-token vocabulary, 4.76 ± 1.66
nats per token, paper Table 4); the tiny model's 128-token vocabulary runs at a fraction of that and
would be heated everywhere. ``measure_entropy`` samples a model at its default settings and returns
the mean and standard deviation of its per-token entropy; ``calibrate`` moves a preset to that scale
with ``samplers.entropy.rescaled``. The ``embedded`` preset in ``samplers.PRESETS`` holds the result
for the shipped tiny model as literal values; ``embedded_preset()`` recomputes it from the recorded
measurement, and the tests check that the two agree. The same is done for the tiny next-scale model:
``measure_scale_entropy`` (plain next-scale sampling at its defaults, every token of every scale) and
the paper's scale-wise (STAR) preset moved to that scale give ``embedded-var``. And for the tiny masked
model: ``measure_masked_entropy`` (plain masked sampling at its defaults, each token's entropy at the step
it was committed) and Meissonic's preset moved to that scale give ``embedded-masked``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import torch

from ..models.llamagen import LlamaGenCondition
from ..models.meissonic.generator import MeissonicClassCondition
from ..models.var import VARCondition
from ..samplers import PRESETS, EntropyTemperature, SamplerSettings, sample_ar
from ..samplers.masked import MaskedOptions, sample_masked
from ..samplers.next_scale import sample_next_scale
from ..samplers.entropy import rescaled

# The tiny model's defaults (demo, bench, example workflow): CFG 2 and top-k 16 (see the README).
DEFAULT_CFG = 2.0
DEFAULT_TOP_K = 16
# The seeds and images per class per seed of the recorded measurement (10 classes → 200 images).
MEASURE_SEEDS = (100, 101)
MEASURE_PER_CLASS = 10

# Recorded: the shipped tiny model's per-token entropy at its defaults, plain sampling, entropy of the
# guided distribution before top-k (raw), over 200 images of seeds 100 and 101 — mean and std in nats.
EMBEDDED_ENTROPY_MEAN = 0.60
EMBEDDED_ENTROPY_STD = 0.51

# The tiny next-scale model's defaults (VAR's ramped cfg 2, top-k 32 of 256) and its recorded per-token
# entropy under plain next-scale sampling (raw, every scale), same seeds and images as above.
VAR_DEFAULT_CFG = 2.0
VAR_DEFAULT_TOP_K = 32
EMBEDDED_VAR_ENTROPY_MEAN = 2.02
EMBEDDED_VAR_ENTROPY_STD = 0.84

# The tiny masked model's defaults (guidance 2, no top-k, 16 steps) and its recorded per-token entropy under
# plain masked sampling (raw, each token at the step it was committed), same seeds and images as above.
MASKED_DEFAULT_CFG = 2.0
MASKED_DEFAULT_STEPS = 16
EMBEDDED_MASKED_ENTROPY_MEAN = 1.32
EMBEDDED_MASKED_ENTROPY_STD = 0.75


@torch.no_grad()
def measure_entropy(gpt, *, cfg: float = DEFAULT_CFG, top_k: int = DEFAULT_TOP_K,
                    per_class: int = MEASURE_PER_CLASS, seeds: Sequence[int] = MEASURE_SEEDS,
                    classes: Sequence[int] | None = None, num_tokens: int | None = None) -> tuple[float, float]:
    """(mean, std) in nats of a class-to-image GPT's per-token entropy under plain sampling.

    Per seed, one batch of ``per_class`` images of each class (default: every class of the model)
    is sampled with guidance ``cfg`` and top-k ``top_k``; the entropy is that of the guided
    distribution before filtering (the 'raw' entropy source), pooled over every token of every image
    (or over the first ``num_tokens`` of each, for a quick look).
    """
    classes = list(range(gpt.config.num_classes)) if classes is None else list(classes)
    labels = torch.tensor(classes, dtype=torch.long).repeat_interleave(per_class).to(gpt.device)
    settings = SamplerSettings(cfg_scale=cfg, top_k=top_k)
    values = torch.cat([sample_ar(gpt, LlamaGenCondition(labels=labels), settings, seed=seed,
                                  num_tokens=num_tokens).entropy.flatten()
                        for seed in seeds]).double()
    return float(values.mean()), float(values.std(unbiased=False))


def llamagen_raw() -> EntropyTemperature:
    """The paper's LlamaGen preset reading the raw entropy (the source the measurement uses)."""
    return replace(PRESETS["llamagen"], source="raw")


def calibrate(gpt, base: EntropyTemperature | None = None, **measure) -> EntropyTemperature:
    """``base`` (default: the LlamaGen preset on raw entropy) moved to ``gpt``'s entropy scale.

    ``measure`` goes to ``measure_entropy`` (cfg, top_k, per_class, seeds, classes, num_tokens).
    """
    mean, std = measure_entropy(gpt, **measure)
    return rescaled(base or llamagen_raw(), mean=mean, std=std)


def embedded_preset() -> EntropyTemperature:
    """The ``embedded`` preset from the recorded measurement of the shipped tiny model."""
    return rescaled(llamagen_raw(), mean=EMBEDDED_ENTROPY_MEAN, std=EMBEDDED_ENTROPY_STD)


@torch.no_grad()
def measure_scale_entropy(pair, *, cfg: float = VAR_DEFAULT_CFG, top_k: int = VAR_DEFAULT_TOP_K,
                          per_class: int = MEASURE_PER_CLASS, seeds: Sequence[int] = MEASURE_SEEDS,
                          classes: Sequence[int] | None = None) -> tuple[float, float]:
    """(mean, std) in nats of a class-to-image next-scale model's per-token entropy under plain sampling.

    ``pair`` is the transformer bound to its VQ-VAE (``VARTransformer.bind``). As ``measure_entropy``:
    per seed one batch of ``per_class`` images of each class, the guided distribution before filtering,
    pooled over every token of every scale.
    """
    num_classes = pair.transformer.config.num_classes
    classes = list(range(num_classes)) if classes is None else list(classes)
    labels = torch.tensor(classes, dtype=torch.long).repeat_interleave(per_class)
    settings = SamplerSettings(cfg_scale=cfg, top_k=top_k)
    values = torch.cat([sample_next_scale(pair, VARCondition(labels=labels), settings, seed=seed).entropy.flatten()
                        for seed in seeds]).double()
    return float(values.mean()), float(values.std(unbiased=False))


def star_raw() -> EntropyTemperature:
    """The paper's scale-wise (STAR) preset reading the raw entropy."""
    return replace(PRESETS["star"], source="raw")


def embedded_var_preset() -> EntropyTemperature:
    """The ``embedded-var`` preset from the recorded measurement of the shipped tiny next-scale model."""
    return rescaled(star_raw(), mean=EMBEDDED_VAR_ENTROPY_MEAN, std=EMBEDDED_VAR_ENTROPY_STD)


@torch.no_grad()
def measure_masked_entropy(generator, *, cfg: float = MASKED_DEFAULT_CFG, steps: int = MASKED_DEFAULT_STEPS,
                           per_class: int = MEASURE_PER_CLASS, seeds: Sequence[int] = MEASURE_SEEDS,
                           classes: Sequence[int] | None = None) -> tuple[float, float]:
    """(mean, std) in nats of a class-to-image masked model's per-token entropy under plain masked sampling.

    ``generator``: a class-conditional ``MeissonicGenerator``. As ``measure_entropy``: per seed one batch
    of ``per_class`` images of each class, the guided distribution before filtering; each token's
    entropy is the one at the step it was committed.
    """
    classes = list(range(generator.num_classes)) if classes is None else list(classes)
    labels = torch.tensor(classes, dtype=torch.long).repeat_interleave(per_class)
    settings = SamplerSettings(cfg_scale=cfg)
    values = torch.cat([sample_masked(generator, MeissonicClassCondition(labels), settings,
                                      options=MaskedOptions(steps=steps), seed=seed).entropy.flatten()
                        for seed in seeds]).double()
    return float(values.mean()), float(values.std(unbiased=False))


def meissonic_raw() -> EntropyTemperature:
    """Meissonic's preset (the released masked sampler's values) reading the raw entropy."""
    return replace(PRESETS["meissonic"], source="raw")


def embedded_masked_preset() -> EntropyTemperature:
    """The ``embedded-masked`` preset from the recorded measurement of the shipped tiny masked model."""
    return rescaled(meissonic_raw(), mean=EMBEDDED_MASKED_ENTROPY_MEAN, std=EMBEDDED_MASKED_ENTROPY_STD)
