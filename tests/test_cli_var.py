"""`arsample generate` and `arsample convert` on VAR (issue 12), with the golden tiny VAR and its VQ-VAE."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from arsample.cli import main
from arsample.models import registry
from arsample.models.var import VARCondition
from arsample.samplers import SamplerSettings, preset
from arsample.samplers.next_scale import NextScaleOptions, ScaleTemperature, sample_next_scale


@pytest.fixture
def var_files(tmp_path, golden):
    gpt, vq = tmp_path / "var_tiny.safetensors", tmp_path / "vae_tiny.safetensors"
    shutil.copy(golden / "var_tiny.safetensors", gpt)
    shutil.copy(golden / "var_vqvae_tiny.safetensors", vq)
    return gpt, vq


def _generate(gpt, vq, out_dir, *extra):
    args = ["generate", "--gpt", str(gpt), "--vq", str(vq), "--classes", "1,2", "--cfg", "1.5", "--seed", "3",
            "--out", str(out_dir / "grid.png"), "--save-tokens", str(out_dir / "tokens.npy"), "--device", "cpu", *extra]
    return main(args)


def _library(gpt, vq, **kw):
    vae = registry.load_tokenizer(vq)
    model = registry.load_model(gpt, tokenizer=vae)
    result = sample_next_scale(model.module.bind(vae.module), VARCondition(labels=torch.tensor([1, 2])), seed=3, **kw)
    return result.tokens.numpy()


@pytest.mark.parametrize("flags,settings,options", [
    ([], SamplerSettings(cfg_scale=1.5), NextScaleOptions()),
    (["--sampler", "entropy"], SamplerSettings(cfg_scale=1.5, entropy=preset("star")), NextScaleOptions()),
    (["--sampler", "entropy", "--preset", "llamagen", "--scale-temperature", "centered", "--beta", "0.5"],
     SamplerSettings(cfg_scale=1.5, entropy=preset("llamagen")),
     NextScaleOptions(scale_temperature=ScaleTemperature("centered", beta=0.5))),
    (["--scale-temperature", "centered-normalized"], SamplerSettings(cfg_scale=1.5),
     NextScaleOptions(scale_temperature=ScaleTemperature())),
])
def test_generate_samples_var_as_the_library_does(var_files, tmp_path, capsys, flags, settings, options):
    gpt, vq = var_files
    assert _generate(gpt, vq, tmp_path, "--entropy-map", str(tmp_path / "map.png"), *flags) == 0
    tokens = np.load(tmp_path / "tokens.npy")
    assert tokens.shape == (2, 66) and tokens.dtype == np.int64
    assert np.array_equal(tokens, _library(gpt, vq, settings=settings, options=options))
    assert np.asarray(Image.open(tmp_path / "grid.png")).shape == (12, 2 * 12 + 2, 3)  # two 12 px images
    assert Image.open(tmp_path / "map.png").size == (2 * 5 * 12 + 2, 12)  # five scale maps per image
    label = capsys.readouterr().out.split(":")[0]
    assert label == ("scale" + ("-entropy" if "entropy" in flags else "")
                     + ("-scalewise" if "--scale-temperature" in flags else ""))


@pytest.mark.parametrize("flags,match", [
    (["--sampler", "sjd"], "SJD does not apply to next-scale decoding"),
    (["--sampler", "plain", "--entropy-temperature"], "--entropy-temperature goes with --sampler sjd"),
    (["--beta", "0.5"], "--beta needs --scale-temperature"),
])
def test_what_does_not_apply_to_var_is_refused(var_files, tmp_path, capsys, flags, match):
    gpt, vq = var_files
    assert _generate(gpt, vq, tmp_path, *flags) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "grid.png").exists() and not (tmp_path / "tokens.npy").exists()


def test_scale_flags_are_refused_on_next_token_models_and_mixed_pairs(tiny_files, var_files, tmp_path, capsys):
    gpt, vq = tiny_files
    assert _generate(gpt, vq, tmp_path, "--scale-temperature", "centered") == 2
    assert "apply to next-scale models (VAR) only" in capsys.readouterr().err
    assert _generate(var_files[0], vq, tmp_path) == 2
    assert "is a LlamaGen tokenizer but var_tiny.safetensors is a VAR model" in capsys.readouterr().err
    assert _generate(gpt, var_files[1], tmp_path, "--sampler", "sjd") == 2
    assert "is a VAR tokenizer but gpt_tiny.safetensors is a LlamaGen model" in capsys.readouterr().err
    assert not (tmp_path / "grid.png").exists()


@pytest.mark.parametrize("name,source,extra", [
    ("var_tiny", "var_tiny", []), ("vae_tiny", "var_vqvae_tiny", []),
    ("var_shared", "var_tiny_shared", ["--n-head", "2"]), ("var_bf16", "var_tiny", ["--dtype", "bf16"]),
])
def test_convert_var_files_and_load_them_back(golden, tmp_path, capsys, name, source, extra):
    src, dst = golden / f"{source}.safetensors", tmp_path / f"renamed_{name}.safetensors"
    assert main(["convert", str(src), str(dst), *extra]) == 0
    assert "VAR" in capsys.readouterr().out
    original, role = registry.family_of_file(src)
    assert registry.family_of_file(dst) == (original, role)
    load = registry.load_model if role == "model" else registry.load_tokenizer
    before, after = load(src), load(dst)
    if name == "var_shared":
        assert after.module.config.num_heads == 2 and after.module.config.shared_aln
    else:
        assert after.module.config == before.module.config
    tol = dict(atol=1e-2, rtol=1e-2) if "bf16" in extra else dict(atol=0, rtol=0)
    for key, value in before.module.state_dict().items():
        torch.testing.assert_close(after.module.state_dict()[key], value, **tol)


def test_converted_var_generates_the_same_tokens(var_files, tmp_path):
    gpt, vq = var_files
    cgpt, cvq = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    assert main(["convert", str(gpt), str(cgpt)]) == 0 and main(["convert", str(vq), str(cvq)]) == 0
    for d, (g, v) in {"orig": (gpt, vq), "conv": (cgpt, cvq)}.items():
        (tmp_path / d).mkdir()
        assert _generate(g, v, tmp_path / d) == 0
    assert np.array_equal(np.load(tmp_path / "orig" / "tokens.npy"), np.load(tmp_path / "conv" / "tokens.npy"))


def test_convert_refuses_model_flags_for_a_tokenizer(golden, tmp_path, capsys):
    dst = tmp_path / "out.safetensors"
    assert main(["convert", str(golden / "var_vqvae_tiny.safetensors"), str(dst), "--image-size", "256"]) == 2
    assert "apply to models; 'var_vqvae_tiny.safetensors' is a VAR tokenizer" in capsys.readouterr().err
    assert not dst.exists()
