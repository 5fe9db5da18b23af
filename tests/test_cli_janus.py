"""`arsample generate --janus FOLDER`: Janus-Pro text-to-image from the release folder as downloaded, on the golden
tiny Janus written as an original-layout folder (config.json, tokenizer.json, pytorch_model.bin).

Every sampler (plain, entropy, SJD with each acceptance rule, coupled) gives exactly the library's tokens for the same
seed (registry.load_model/load_tokenizer on the folder, ``Family.text_condition``, the catalog samplers), with the
reference's defaults (cfg 5, temperature 1, no top-k); ``--gpt FOLDER`` is the same run; bad input exits 2 with one
line and writes nothing.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from arsample.cli import main
from arsample.models import registry
from arsample.samplers import NamedSampler, NextToken, SamplerSettings, SJDSettings, SpeculativeJacobi, preset

PROMPTS = ("A red cube on a wooden table", "a small cat")
IMAGE_SIZE = 8  # the tiny VQ decodes 2 px per token: a 4×4 grid of 16 tokens


@pytest.fixture(scope="module")
def folder(tmp_path_factory, golden):
    """The golden tiny Janus as the original release lays it out: config.json, tokenizer.json, pytorch_model.bin."""
    with safe_open(str(golden / "janus_tiny.safetensors"), "pt") as f:
        config = f.metadata()["config"]
    root = tmp_path_factory.mktemp("janus_cli") / "Janus-Pro-Tiny"
    root.mkdir()
    (root / "config.json").write_text(config)
    shutil.copy(golden / "janus_tiny_tokenizer.json", root / "tokenizer.json")
    torch.save(load_file(golden / "janus_tiny.safetensors"), root / "pytorch_model.bin")
    return root


@pytest.fixture(scope="module")
def library(folder):
    """The library on the same folder: (model, its VQ)."""
    vq = registry.load_tokenizer(folder)
    return registry.load_model(folder, image_size=IMAGE_SIZE, tokenizer=vq), vq


def _argv(folder, out, *extra, flag="--janus"):
    prompts = [a for p in PROMPTS for a in ("--prompt", p)]
    return ["generate", flag, str(folder), *prompts, "--image-size", str(IMAGE_SIZE), "--seed", "3",
            "--out", str(out), "--device", "cpu", *extra]


def _sjd(rule: str, coupled: bool = False) -> SpeculativeJacobi:
    return SpeculativeJacobi(SJDSettings(window=16, init="repeat", acceptance=rule, coupled=coupled))


# CLI flags → (the library's method, entropy temperature on?)
SAMPLERS = {
    "plain": ([], NextToken(), False),
    "entropy": (["--sampler", "entropy"], NextToken(), True),
    "sjd-exact": (["--sampler", "sjd"], _sjd("exact"), False),
    "sjd-entropy": (["--sampler", "sjd", "--acceptance", "entropy"], _sjd("entropy"), False),
    "sjd-entropy-scale": (["--sampler", "sjd", "--acceptance", "entropy-scale"], _sjd("entropy-scale"), False),
    "sjd-constant": (["--sampler", "sjd", "--acceptance", "constant"], _sjd("constant"), False),
    "coupled": (["--sampler", "sjd", "--coupled"], _sjd("exact", coupled=True), False),
    "coupled-entropy-temperature": (["--sampler", "sjd", "--coupled", "--entropy-temperature"],
                                    _sjd("exact", coupled=True), True),
}


def _library_tokens(library, method, entropy: bool, seed: int = 3, **settings) -> np.ndarray:
    model, _ = library
    cond = model.family.text_condition(model.module, model.info, list(PROMPTS))
    base = SamplerSettings(**{"cfg_scale": 5.0, "temperature": 1.0, "top_k": 0, "top_p": 1.0, **settings},
                           entropy=preset(model.info.preset) if entropy else None)
    result = NamedSampler("ref", base, method).run(model.module, cond.value, seed=seed)
    return result.tokens.numpy()


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_sampler_gives_the_library_tokens(folder, library, tmp_path, capsys, name):
    flags, method, entropy = SAMPLERS[name]
    out, tokens, heat = tmp_path / "grid.png", tmp_path / "tokens.npy", tmp_path / "entropy.png"
    assert main(_argv(folder, out, "--save-tokens", str(tokens), "--entropy-map", str(heat), *flags)) == 0
    got = np.load(tokens)
    assert got.dtype == np.int64 and got.shape == (2, 16)
    assert np.array_equal(got, _library_tokens(library, method, entropy))
    assert Image.open(out).size == (2 * IMAGE_SIZE + 2, IMAGE_SIZE)
    assert Image.open(heat).size == (2 * IMAGE_SIZE + 2, IMAGE_SIZE)
    assert "forward passes" in capsys.readouterr().out


def test_gpt_folder_is_the_same_run_and_settings_pass_through(folder, library, tmp_path):
    """--gpt FOLDER (no --vq) equals --janus FOLDER; --cfg, --top-k, --temperature reach the sampler."""
    runs = {}
    for flag in ("--janus", "--gpt"):
        path = tmp_path / f"{flag.strip('-')}.npy"
        assert main(_argv(folder, tmp_path / f"{flag.strip('-')}.png", "--cfg", "3", "--top-k", "20",
                          "--temperature", "0.9", "--save-tokens", str(path), flag=flag)) == 0
        runs[flag] = np.load(path)
    assert np.array_equal(runs["--janus"], runs["--gpt"])
    ref = _library_tokens(library, NextToken(), False, cfg_scale=3.0, top_k=20, temperature=0.9)
    assert np.array_equal(runs["--janus"], ref)


def test_default_size_is_the_references_grid(folder, tmp_path):
    """No --image-size: the reference's 24×24 grid (384 px with the release's 16 px VQ; 48 px with the tiny 2 px one).
    The tiny config's context (256 positions) cannot hold 576 image tokens: the session says so."""
    argv = [a for a in _argv(folder, tmp_path / "grid.png") if a not in ("--image-size", str(IMAGE_SIZE))]
    assert main(argv) == 2
    assert list(tmp_path.iterdir()) == []
    wide = tmp_path / "wide"
    shutil.copytree(folder, wide)
    config = json.loads((wide / "config.json").read_text())
    config["language_config"]["max_position_embeddings"] = 1024  # RoPE: any length runs
    (wide / "config.json").write_text(json.dumps(config))
    out = tmp_path / "out"
    out.mkdir()
    argv = ["generate", "--janus", str(wide), "--prompt", "a cat", "--seed", "3", "--out", str(out / "grid.png"),
            "--save-tokens", str(out / "t.npy"), "--device", "cpu"]
    assert main(argv) == 0
    assert np.load(out / "t.npy").shape == (1, 576)
    assert Image.open(out / "grid.png").size == (48, 48)


@pytest.mark.parametrize("case,match", [
    ("t5", "drop --t5/--clip"),
    ("clip", "drop --t5/--clip"),
    ("gpt_folder_with_t5", "not a T5 text encoder: give --prompt alone"),
    ("classes", "text-to-image model; use --prompt (no text encoder), not classes"),
    ("too_long", "context leaves room for"),
    ("with_gpt", "--janus FOLDER alone"),
    ("no_prompt", "one of the two"),
])
def test_bad_input_exits_2_and_writes_nothing(folder, tmp_path, capsys, case, match):
    out = tmp_path / "out" / "grid.png"
    out.parent.mkdir()
    argv = _argv(folder, out, "--save-tokens", str(out.parent / "t.npy"))
    if case == "t5":
        argv += ["--t5", str(tmp_path / "flan-t5-xl")]
    elif case == "clip":
        argv += ["--clip", str(tmp_path / "stable-diffusion-2-1")]
    elif case == "gpt_folder_with_t5":
        argv = _argv(folder, out, "--t5", str(tmp_path / "flan-t5-xl"), flag="--gpt")
    elif case == "classes":
        argv = [a for a in argv if a not in ("--prompt", *PROMPTS)] + ["--classes", "1"]
    elif case == "too_long":
        argv += ["--prompt", "cube " * 300]
    elif case == "with_gpt":
        argv += ["--gpt", str(folder)]
    elif case == "no_prompt":
        argv = [a for a in argv if a not in ("--prompt", *PROMPTS)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err, err
    assert "Traceback" not in err and err.count("\n") == 1
    assert list(out.parent.iterdir()) == []
