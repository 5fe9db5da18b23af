"""Faults found by using the pack as people do (issue 10): preset sources, non-finite numbers,
settings that vary with the position inside a speculative pass."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from arsample.cli import main
from arsample.errors import SamplingError
from arsample.models.checkpoint import save_safetensors_atomic
from arsample.models.llamagen import LlamaGenCondition, LlamaGenGPT
from arsample.samplers import PRESETS, EntropyTemperature, SamplerSettings, preset, sample_ar
from arsample.samplers.entropy import preset_or_custom
from arsample.samplers.next_token import SJDSettings, sample_sjd
from tinymodels import tiny_gpt_config

NAN, INF = float("nan"), float("inf")


# --- a named preset keeps its own parameters, its entropy source included -------------------------------

@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("source_widget", ["filtered", "raw"])
def test_a_named_preset_ignores_the_custom_widgets(name, source_widget):
    got = preset_or_custom(name, t0=9.0, alpha=9.0, theta=9.0, clamp_min=3.0, clamp_max=4.0, source=source_widget)
    assert got == PRESETS[name] == preset(name)


def test_presets_defined_on_the_raw_entropy_stay_raw():
    assert PRESETS["embedded"].source == "raw" and PRESETS["lumina-mgpt-code"].source == "raw"
    assert preset_or_custom("embedded", t0=1, alpha=1, theta=1, source="filtered").source == "raw"


def test_custom_and_off():
    custom = preset_or_custom("custom", t0=1.5, alpha=2.0, theta=0.3, clamp_min=0.0, clamp_max=2.0, source="raw")
    assert custom == EntropyTemperature(1.5, 2.0, 0.3, None, 2.0, "raw")
    assert preset_or_custom("off", t0=1, alpha=1, theta=1) is None


# --- settings must be finite ------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [dict(cfg_scale=NAN), dict(cfg_scale=INF), dict(top_p=NAN),
                                    dict(temperature=NAN), dict(temperature=[1.0, INF])])
def test_non_finite_sampler_settings_are_refused(kwargs):
    with pytest.raises(SamplingError, match="finite"):
        SamplerSettings(**kwargs)


@pytest.mark.parametrize("field", ["t0", "alpha", "theta", "clamp_min", "clamp_max"])
@pytest.mark.parametrize("value", [NAN, INF, -INF])
def test_non_finite_entropy_parameters_are_refused(field, value):
    with pytest.raises(SamplingError, match="finite"):
        EntropyTemperature(**{field: value})


@pytest.mark.parametrize("field", ["entropy_e", "entropy_lambda", "scale_floor", "constant"])
def test_non_finite_sjd_parameters_are_refused(field):
    with pytest.raises(SamplingError, match="finite"):
        SJDSettings(**{field: NAN})


@pytest.mark.parametrize("flag,value", [("--cfg", "nan"), ("--temperature", "inf"), ("--t0", "nan"),
                                        ("--top-p", "nan")])
def test_cli_refuses_non_finite_settings_and_writes_nothing(tiny_files, tmp_path, capsys, flag, value):
    gpt, vq = tiny_files
    out = tmp_path / "out"
    out.mkdir()
    rc = main(["generate", "--gpt", str(gpt), "--vq", str(vq), "--classes", "1", "--sampler", "entropy",
               flag, value, "--out", str(out / "x.png"), "--device", "cpu"])
    assert rc == 2
    assert "finite" in capsys.readouterr().err
    assert list(out.iterdir()) == []


# --- non-finite logits stop sampling with a clear message --------------------------------------------------

def _overflowing_gpt() -> LlamaGenGPT:
    """A tiny c2i GPT whose fp16 logits overflow (the issue's example: output weights × 30000)."""
    gen = torch.Generator().manual_seed(0)
    model = LlamaGenGPT(tiny_gpt_config())
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.5 if p.dim() > 1 else 0.1) + (1.0 if p.dim() == 1 else 0))
        model.output.weight.mul_(30000)
    return model.eval().requires_grad_(False)


@pytest.mark.parametrize("sampler", ["ar", "sjd", "coupled"])
def test_fp16_overflow_is_a_sampling_error_that_names_cause_and_fix(sampler):
    model = _overflowing_gpt().half()
    cond = LlamaGenCondition(labels=torch.tensor([1, 2]))
    settings = SamplerSettings(cfg_scale=4.0)
    with pytest.raises(SamplingError, match="not finite") as info:
        if sampler == "ar":
            sample_ar(model, cond, settings)
        else:
            sample_sjd(model, cond, settings, SJDSettings(window=4, coupled=sampler == "coupled"))
    assert "fp16 overflow" in str(info.value) and "bf16 or fp32" in str(info.value)


def test_the_same_model_in_fp32_samples_fine():
    result = sample_ar(_overflowing_gpt(), LlamaGenCondition(labels=torch.tensor([1])), SamplerSettings(cfg_scale=4))
    assert math.isfinite(result.stats.mean_entropy)


def test_cli_fp16_overflow_exits_2_and_writes_nothing(tmp_path, capsys):
    model = _overflowing_gpt()
    from tinymodels import randomize_, tiny_vq_config
    from arsample.models.llamagen import LlamaGenVQ

    vq = randomize_(LlamaGenVQ(tiny_vq_config()), seed=3)
    gpt_path, vq_path = tmp_path / "gpt.safetensors", tmp_path / "vq.safetensors"
    save_safetensors_atomic(model.state_dict(), gpt_path, model.config.to_metadata())
    save_safetensors_atomic(vq.state_dict(), vq_path, vq.config.to_metadata())
    out = tmp_path / "out"
    out.mkdir()
    rc = main(["generate", "--gpt", str(gpt_path), "--vq", str(vq_path), "--classes", "1", "--cfg", "4",
               "--dtype", "fp16", "--out", str(out / "x.png"), "--save-tokens", str(out / "t.npy"),
               "--entropy-map", str(out / "map.png"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "fp16 overflow" in err and "Traceback" not in err
    assert list(out.iterdir()) == []


# --- exact SJD stays exact when guidance depends on the position --------------------------------------------

def _interval_gpt() -> LlamaGenGPT:
    """The issue's example: dim 32, 2 layers, vocabulary 16, 4x4 grid, weights ~ N(0, 0.5)."""
    gen = torch.Generator().manual_seed(6)  # a draw whose passes straddle the intervals tested (old code: 6-12 tokens off)
    model = LlamaGenGPT(tiny_gpt_config(dim=32, n_layer=2, n_head=4, vocab_size=16, grid_size=4))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return model.eval().requires_grad_(False)


@pytest.mark.parametrize("window", [4, 16])
@pytest.mark.parametrize("cfg_interval", [0, 1, 5])
@pytest.mark.parametrize("coupled", [False, True])
def test_greedy_sjd_equals_greedy_ar_when_a_pass_straddles_cfg_interval(window, cfg_interval, coupled):
    model = _interval_gpt()
    cond = LlamaGenCondition(labels=torch.tensor([1]))
    settings = SamplerSettings(cfg_scale=4.0, cfg_interval=cfg_interval, temperature=0.0)
    ar = sample_ar(model, cond, settings)
    sjd = sample_sjd(model, cond, settings, SJDSettings(window=window, coupled=coupled))
    assert torch.equal(ar.tokens, sjd.tokens)
    # the interval matters for this model, so the test can tell right from wrong guidance
    always = sample_ar(model, cond, SamplerSettings(cfg_scale=4.0, temperature=0.0))
    assert not torch.equal(ar.tokens, always.tokens)


def test_cfg_active_at_matches_the_one_token_rule():
    positions = torch.arange(12)
    for interval in (-1, 0, 3, 10):
        s = SamplerSettings(cfg_scale=3.0, cfg_interval=interval)
        mask = torch.as_tensor(s.cfg_active_at(positions)).expand(12)
        assert mask.tolist() == [s.cfg_active(int(i)) for i in positions]
    assert SamplerSettings(cfg_scale=1.0).cfg_active_at(positions) is False


def test_entropy_map_png_of_a_finite_run_is_written(tiny_files, tmp_path):
    """The happy path of the CLI outputs still writes every file."""
    gpt, vq = tiny_files
    rc = main(["generate", "--gpt", str(gpt), "--vq", str(vq), "--classes", "1", "--out", str(tmp_path / "x.png"),
               "--entropy-map", str(tmp_path / "m.png"), "--save-tokens", str(tmp_path / "t.npy"), "--device", "cpu"])
    assert rc == 0 and (tmp_path / "m.png").exists() and np.load(tmp_path / "t.npy").shape == (1, 16)


def test_convert_to_fp16_that_would_overflow_is_refused(tmp_path, capsys):
    """Weights fine in fp32 but beyond fp16's range: the converted file would hold inf."""
    model = _overflowing_gpt()
    with torch.no_grad():
        model.output.weight.mul_(10)  # ~1e5: above fp16's 65504
    src, dst = tmp_path / "big.safetensors", tmp_path / "big_fp16.safetensors"
    save_safetensors_atomic(model.state_dict(), src, model.config.to_metadata())
    assert main(["convert", str(src), str(dst), "--dtype", "fp16"]) == 2
    assert "NaN or infinite" in capsys.readouterr().err and not dst.exists()
    assert main(["convert", str(src), str(dst), "--dtype", "bf16"]) == 0
