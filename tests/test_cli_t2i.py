"""`arsample generate --prompt`: text-to-image end to end on tiny stand-ins of the official t2i files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from arsample.cli import main


@pytest.fixture(scope="module")
def t2i_files(tmp_path_factory, golden):
    from tinymodels import write_t2i_standins

    return write_t2i_standins(tmp_path_factory.mktemp("t2i_models"), golden)


def _argv(files, out, *extra):
    # 64 px = 4x4 tokens keeps the test fast; the layout is the official one.
    return ["generate", "--gpt", str(files["gpt"]), "--vq", str(files["vq"]), "--t5", str(files["t5"]),
            "--image-size", "64", "--seed", "3", "--out", str(out), "--device", "cpu", *extra]


@pytest.mark.parametrize("sampler", [["--sampler", "plain"], ["--sampler", "entropy"],
                                     ["--sampler", "sjd", "--window", "4"],
                                     ["--sampler", "sjd", "--acceptance", "entropy", "--entropy-temperature"]])
def test_prompts_generate_with_every_sampler(t2i_files, tmp_path, capsys, sampler):
    out = tmp_path / "grid.png"
    argv = _argv(t2i_files, out, "--prompt", "A red fox at golden hour", "--prompt", "a blue car",
                 "--save-tokens", str(tmp_path / "t.npy"), *sampler)
    assert main(argv) == 0
    assert np.load(tmp_path / "t.npy").shape == (2, 16)
    assert Image.open(out).size == (2 * 64 + 2, 64)
    assert "forward passes" in capsys.readouterr().out


def test_prompt_decides_the_image(t2i_files, tmp_path):
    def tokens(prompt, name):
        assert main(_argv(t2i_files, tmp_path / f"{name}.png", "--prompt", prompt, "--save-tokens",
                          str(tmp_path / f"{name}.npy"))) == 0
        return np.load(tmp_path / f"{name}.npy")

    a, again, other = tokens("a red fox", "a"), tokens("a red fox", "b"), tokens("a snowy mountain lake", "c")
    assert np.array_equal(a, again) and not np.array_equal(a, other)
    # Cleaning lower-cases the prompt as the reference does: the same tokens either way.
    assert np.array_equal(a, tokens("A  RED fox", "d"))


@pytest.mark.parametrize("case,match", [
    ("no_t5", "needs the text encoder"),
    ("both", "one of the two"),
    ("classes_to_t2i", "text-to-image model; use --prompt with --t5, not classes"),
    ("prompt_to_c2i", "class-to-image model; use --classes, not a text prompt"),
    ("wrong_width", "2048"),
])
def test_t2i_bad_input_exits_2(t2i_files, tiny_files, tmp_path, capsys, case, match):
    out = tmp_path / "out" / "grid.png"
    out.parent.mkdir()
    argv = _argv(t2i_files, out, "--prompt", "a cat")
    if case == "no_t5":
        argv = [a for a in argv if a != str(t2i_files["t5"]) and a != "--t5"]
    elif case == "both":
        argv += ["--classes", "1"]
    elif case == "classes_to_t2i":
        argv = [a if a != "--prompt" else "--classes" for a in argv]
        argv[argv.index("a cat")] = "1"
    elif case == "prompt_to_c2i":
        gpt, vq = tiny_files
        argv[argv.index(str(t2i_files["gpt"]))] = str(gpt)
        argv[argv.index(str(t2i_files["vq"]))] = str(vq)
        argv[argv.index("64")] = "8"
    elif case == "wrong_width":
        import torch

        from arsample.models.llamagen import LlamaGenGPT

        from tinymodels import randomize_, tiny_gpt_config

        wide = randomize_(LlamaGenGPT(tiny_gpt_config(model_type="t2i", vocab_size=16384, n_head=1, grid_size=16,
                                                      caption_dim=2048, caption_tokens=120, cls_token_num=120)))
        path = tmp_path / "t2i_B_256.pt"
        torch.save({"model": wide.state_dict()}, path)
        argv[argv.index(str(t2i_files["gpt"]))] = str(path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err
    assert list(out.parent.iterdir()) == []
