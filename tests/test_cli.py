"""The `arsample` command line, end to end on tiny random models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from arsample.cli import main
from arsample.models.llamagen import load_gpt


def _generate(gpt, vq, tmp_path, *extra):
    out = tmp_path / "grid.png"
    args = ["generate", "--gpt", str(gpt), "--vq", str(vq), "--classes", "1,7,1", "--cfg", "2.0", "--seed", "5",
            "--out", str(out), "--save-tokens", str(tmp_path / "tokens.npy"), "--entropy-map",
            str(tmp_path / "map.png"), "--device", "cpu", *extra]
    return main(args), out


def test_generate_decode_roundtrip(tiny_files, tmp_path, capsys):
    gpt, vq = tiny_files
    rc, out = _generate(gpt, vq, tmp_path, "--sampler", "entropy", "--preset", "llamagen", "--t0", "2.0")
    assert rc == 0
    tokens = np.load(tmp_path / "tokens.npy")
    assert tokens.dtype == np.int64 and tokens.shape == (3, 16)
    grid = np.asarray(Image.open(out))
    assert grid.shape == (8, 3 * 8 + 2 * 2, 3)  # three 8x8 images in a row, 2 px gaps
    assert Image.open(tmp_path / "map.png").size == (28, 8)
    assert "forward passes" in capsys.readouterr().out
    strip = tmp_path / "strip.png"
    assert main(["decode", "--vq", str(vq), "--tokens", str(tmp_path / "tokens.npy"), "--out", str(strip),
                 "--device", "cpu"]) == 0
    decoded = np.asarray(Image.open(strip))
    assert decoded.shape == (8, 24, 3)
    assert np.array_equal(decoded[:, 0:8], grid[:, 0:8])  # same pixels as in the generate grid
    assert np.array_equal(decoded[:, 16:24], grid[:, 20:28])


def test_same_seed_same_tokens_and_sampler_matters(tiny_files, tmp_path):
    gpt, vq = tiny_files
    runs = {}
    for name, extra in [("a", ["--sampler", "plain"]), ("b", ["--sampler", "plain"]), ("c", ["--sampler", "entropy"])]:
        d = tmp_path / name
        d.mkdir()
        assert _generate(gpt, vq, d, *extra)[0] == 0
        runs[name] = np.load(d / "tokens.npy")
    assert np.array_equal(runs["a"], runs["b"])
    assert not np.array_equal(runs["a"], runs["c"])


def test_convert_roundtrip_and_dtype(tmp_path, tiny_c2i):
    src = tmp_path / "c2i_tiny.pt"
    torch.save({"model": tiny_c2i.state_dict()}, src)
    dst = tmp_path / "tiny.safetensors"
    assert main(["convert", str(src), str(dst), "--n-head", "4", "--image-size", "64", "--dtype", "bf16"]) == 0
    model = load_gpt(dst)
    assert model.config.n_head == 4 and model.config.grid_size == 4
    assert model.output.weight.dtype == torch.float32  # loaded at the requested dtype (fp32 default)
    torch.testing.assert_close(model.output.weight, tiny_c2i.output.weight.bfloat16().float())


@pytest.mark.parametrize("case,match", [
    ("missing_gpt", "not found"),
    ("vq_as_gpt", "not a GPT"),
    ("bad_class", "Class id out of range"),
    ("topk", "larger than the vocabulary"),
    ("negative_cfg", "cfg must be"),
    ("negative_temperature", "temperature must be"),
    ("image_size", "downsample factor"),
    ("vocab_mismatch", "not trained together"),
    ("no_folder", "does not exist"),
])
def test_bad_input_exits_2_and_writes_nothing(tiny_files, tmp_path, capsys, case, match):
    gpt, vq = tiny_files
    out = tmp_path / "out" / "grid.png"
    out.parent.mkdir()
    args = {"gpt": str(gpt), "vq": str(vq), "classes": "1", "cfg": "2.0", "top-k": "0", "temperature": "1.0"}
    extra = []
    if case == "missing_gpt":
        args["gpt"] = str(tmp_path / "none.pt")
    elif case == "vq_as_gpt":
        args["gpt"] = str(vq)
    elif case == "bad_class":
        args["classes"] = "3,10"
    elif case == "topk":
        args["top-k"] = "65"
    elif case == "negative_cfg":
        args["cfg"] = "-1"
    elif case == "negative_temperature":
        args["temperature"] = "-1"
    elif case == "image_size":
        extra = ["--image-size", "31"]
    elif case == "vocab_mismatch":
        from arsample.models.checkpoint import save_safetensors_atomic
        from arsample.models.llamagen import LlamaGenVQ

        from tinymodels import randomize_, tiny_vq_config

        other = randomize_(LlamaGenVQ(tiny_vq_config(codebook_size=32)))
        args["vq"] = str(tmp_path / "vq32.safetensors")
        save_safetensors_atomic(other.state_dict(), args["vq"], other.config.to_metadata())
    elif case == "no_folder":
        out = tmp_path / "missing" / "grid.png"
    argv = ["generate", "--out", str(out), "--save-tokens", str(out.parent / "t.npy"), "--device", "cpu"]
    for k, v in args.items():
        argv += [f"--{k}", v]
    assert main(argv + extra) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err
    if out.parent.exists():
        assert list(out.parent.iterdir()) == []


def test_decode_rejects_non_integer_tokens(tiny_files, tmp_path, capsys):
    np.save(tmp_path / "f.npy", np.zeros((1, 16), dtype=np.float32))
    rc = main(["decode", "--vq", str(tiny_files[1]), "--tokens", str(tmp_path / "f.npy"), "--out",
               str(tmp_path / "x.png"), "--device", "cpu"])
    assert rc == 2 and "integers" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_console_script_is_installed():
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    beside_python = Path(sys.executable).parent / "arsample"
    exe = str(beside_python) if beside_python.exists() else shutil.which("arsample")
    assert exe, "the 'arsample' command is not on PATH; install the package (pip install -e .)"
    out = subprocess.run([exe, "generate", "--help"], capture_output=True, text=True, check=True).stdout
    for flag in ("--gpt", "--vq", "--classes", "--sampler", "--save-tokens", "--entropy-map", "--preset", "--dtype"):
        assert flag in out


@pytest.mark.parametrize("extra", [["--acceptance", "exact"], ["--acceptance", "entropy", "--coupled"],
                                   ["--acceptance", "entropy-scale", "--window", "4", "--init", "random"],
                                   ["--entropy-temperature", "--coupled"]])
def test_generate_with_sjd(tiny_files, tmp_path, capsys, extra):
    gpt, vq = tiny_files
    rc, out = _generate(gpt, vq, tmp_path, "--sampler", "sjd", *extra)
    assert rc == 0
    assert np.load(tmp_path / "tokens.npy").shape == (3, 16)
    text = capsys.readouterr().out
    assert "tokens per forward" in text and "acceptance rate" in text


def test_sjd_window_one_matches_plain_in_the_cli(tiny_files, tmp_path):
    gpt, vq = tiny_files
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert _generate(gpt, vq, tmp_path / "a", "--sampler", "plain")[0] == 0
    assert _generate(gpt, vq, tmp_path / "b", "--sampler", "sjd", "--window", "1")[0] == 0
    assert np.array_equal(np.load(tmp_path / "a" / "tokens.npy"), np.load(tmp_path / "b" / "tokens.npy"))
