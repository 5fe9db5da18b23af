"""The lab's calibration of the 'embedded' entropy preset to the tiny model's entropy scale."""

from __future__ import annotations

import dataclasses
import math

import pytest

from arsample.lab.calibration import (EMBEDDED_ENTROPY_MEAN, EMBEDDED_ENTROPY_STD, calibrate, embedded_preset,
                                      llamagen_raw, measure_entropy)
from arsample.samplers import PRESETS
from arsample.samplers.entropy import rescaled


def test_embedded_preset_is_the_recorded_calibration():
    ours, shipped = embedded_preset(), PRESETS["embedded"]
    for field in dataclasses.fields(shipped):
        assert getattr(ours, field.name) == getattr(shipped, field.name), field.name
    assert ours.source == "raw" and ours.theta == PRESETS["llamagen"].theta


@pytest.fixture(scope="module")
def tiny_gpt():
    from arsample.models.embedded import load_embedded

    return load_embedded("tiny")[0]


def test_measuring_a_few_images(tiny_gpt):
    """Two images, the first 64 tokens each: cheap, deterministic, on the tiny model's scale of entropy."""
    quick = dict(classes=[0, 5], per_class=1, seeds=(100,), num_tokens=64)
    mean, std = measure_entropy(tiny_gpt, **quick)
    assert (mean, std) == measure_entropy(tiny_gpt, **quick)  # seeded
    assert 0.1 < mean < math.log(tiny_gpt.vocab_size) and 0 < std < 2
    assert abs(mean - EMBEDDED_ENTROPY_MEAN) < 0.5  # far below LlamaGen's 4.76 nats
    assert calibrate(tiny_gpt, **quick) == rescaled(llamagen_raw(), mean=mean, std=std)
    assert calibrate(tiny_gpt, PRESETS["star"], **quick).theta == PRESETS["star"].theta
    assert EMBEDDED_ENTROPY_STD > 0


def test_embedded_var_preset_is_the_recorded_calibration():
    from arsample.lab.calibration import embedded_var_preset, star_raw

    ours, shipped = embedded_var_preset(), PRESETS["embedded-var"]
    for field in dataclasses.fields(shipped):
        assert getattr(ours, field.name) == getattr(shipped, field.name), field.name
    assert ours.source == "raw" and ours.theta == star_raw().theta == PRESETS["star"].theta


def test_measuring_the_next_scale_model():
    """Two images of the tiny next-scale model: seeded, on its scale of entropy (every token of every scale)."""
    from arsample.lab.calibration import EMBEDDED_VAR_ENTROPY_MEAN, measure_scale_entropy
    from arsample.models.embedded import load_embedded

    var, vqvae = load_embedded("tiny-var")
    quick = dict(classes=[0, 5], per_class=1, seeds=(100,))
    mean, std = measure_scale_entropy(var.bind(vqvae), **quick)
    assert (mean, std) == measure_scale_entropy(var.bind(vqvae), **quick)
    assert 0.1 < mean < math.log(var.vocab_size) and std > 0
    assert abs(mean - EMBEDDED_VAR_ENTROPY_MEAN) < 0.5


def test_embedded_masked_preset_is_the_recorded_calibration():
    from arsample.lab.calibration import embedded_masked_preset, meissonic_raw

    ours, shipped = embedded_masked_preset(), PRESETS["embedded-masked"]
    for field in dataclasses.fields(shipped):
        assert getattr(ours, field.name) == getattr(shipped, field.name), field.name
    assert ours.source == "raw" and ours.theta == meissonic_raw().theta == PRESETS["meissonic"].theta


def test_measuring_the_masked_model():
    """Two images of the tiny masked model: seeded, on its scale of entropy (each token at its commit step)."""
    from arsample.lab.calibration import EMBEDDED_MASKED_ENTROPY_MEAN, measure_masked_entropy
    from arsample.models.embedded import load_embedded

    generator, _ = load_embedded("tiny-masked")
    quick = dict(classes=[0, 5], per_class=1, seeds=(100,))
    mean, std = measure_masked_entropy(generator, **quick)
    assert (mean, std) == measure_masked_entropy(generator, **quick)
    assert 0.1 < mean < math.log(generator.vocab_size) and std > 0
    assert abs(mean - EMBEDDED_MASKED_ENTROPY_MEAN) < 0.5
