"""The shipped tiny model: loads by name, makes images of the requested class, demo and bench work."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from arsample.cli import main
from arsample.errors import CheckpointError
from arsample.lab.dataset import IMAGE_SIZE, make_batch, to_model_range
from arsample.lab.evaluator import frechet_distance, load_evaluator, predict
from arsample.models.embedded import embedded_paths, load_embedded
from arsample.models.llamagen import LlamaGenCondition
from arsample.samplers import SamplerSettings, named_sampler


@pytest.fixture(scope="module")
def tiny():
    gpt, vq = load_embedded("tiny")
    return gpt, vq, load_evaluator("tiny")


def test_shipped_files_are_small_and_carry_their_config():
    from safetensors import safe_open

    paths = embedded_paths("tiny")
    assert sum(p.stat().st_size for p in paths.values()) <= 16 * 1024 * 1024
    for key in ("gpt", "vq"):
        with safe_open(str(paths[key]), "pt") as f:
            assert "arsample_config" in f.metadata()


def test_tiny_model_shape(tiny):
    gpt, vq, _ = tiny
    assert gpt.grid_size == 16 and gpt.num_image_tokens == 256
    assert gpt.vocab_size == vq.codebook_size
    assert gpt.grid_size * vq.downsample == IMAGE_SIZE
    from arsample.models.llamagen import load_gpt, load_vq

    paths = embedded_paths("tiny")
    assert load_gpt(paths["gpt"]).config == gpt.config and load_vq(paths["vq"]).config == vq.config
    # The LlamaGen loader reads files only; the embedded model's name is resolved by its callers.
    with pytest.raises(CheckpointError):
        load_gpt("tiny")


def test_evaluator_recognises_real_images(tiny):
    _, _, evaluator = tiny
    images, labels = make_batch(range(300), seed=11)
    pred, _ = predict(evaluator, to_model_range(images))
    assert (pred.numpy() == labels).mean() >= 0.97


def test_vq_reconstructs_held_out_images(tiny):
    _, vq, _ = tiny
    images, _ = make_batch(range(64), seed=12)
    x = to_model_range(images)
    recon = vq.decode_codes(vq.encode(x)).clamp(-1, 1)
    psnr = 10 * torch.log10(4 / (recon - x).pow(2).mean())
    assert psnr > 22


def _default_settings() -> SamplerSettings:
    from arsample.cli.embedded_args import TINY_DEFAULTS

    return SamplerSettings(cfg_scale=TINY_DEFAULTS["cfg"], top_k=TINY_DEFAULTS["top_k"])


def test_generated_images_show_the_requested_class(tiny):
    """Fixed seed, 3 images per class, plain sampler at the defaults: the evaluator recognises the class
    (chance is 10%; the README's 150-image benchmark gives about 90%)."""
    gpt, vq, evaluator = tiny
    labels = torch.arange(10).repeat_interleave(3)
    result = named_sampler("plain", _default_settings()).run(gpt, LlamaGenCondition(labels=labels), seed=0)
    pred, _ = predict(evaluator, vq.decode_codes(result.tokens).clamp(-1, 1))
    accuracy = (pred == labels).float().mean().item()
    assert accuracy >= 0.75, accuracy
    # ... and the class decides it: the same seed with the labels shifted by one is recognised as shifted.
    shifted = (labels + 1) % 10
    other = named_sampler("plain", _default_settings()).run(gpt, LlamaGenCondition(labels=shifted), seed=0)
    pred_other, _ = predict(evaluator, vq.decode_codes(other.tokens).clamp(-1, 1))
    assert (pred_other == shifted).float().mean().item() >= 0.75


def test_generated_images_look_like_the_data(tiny):
    """Fixed seed, 2 images per class with the plain sampler at the default settings: images with the
    data's large flat regions, much closer (Fréchet distance) to real images than images decoded from
    random tokens, and all different."""
    gpt, vq, evaluator = tiny
    labels = torch.arange(10).repeat_interleave(2)
    result = named_sampler("plain", _default_settings()).run(gpt, LlamaGenCondition(labels=labels), seed=0)
    images = vq.decode_codes(result.tokens).clamp(-1, 1)
    random_tokens = torch.randint(0, vq.codebook_size, result.tokens.shape, generator=torch.Generator().manual_seed(0))
    noise = vq.decode_codes(random_tokens).clamp(-1, 1)
    real, _ = make_batch(range(200), seed=13)
    real_feats = predict(evaluator, to_model_range(real))[1]
    fd_generated = frechet_distance(predict(evaluator, images)[1], real_feats)
    fd_noise = frechet_distance(predict(evaluator, noise)[1], real_feats)
    assert fd_generated < 0.5 * fd_noise
    def flat_share(x):  # share of horizontally neighbouring pixels that (almost) agree
        pixels = ((x + 1) * 127.5).round()
        return float(((pixels[..., :, 1:] - pixels[..., :, :-1]).abs().sum(1) <= 6).float().mean())

    reconstructed = vq.decode_codes(vq.encode(to_model_range(real[:20]))).clamp(-1, 1)
    assert flat_share(images) > 0.6 * flat_share(reconstructed)  # large smooth regions, as in the data
    assert flat_share(images) > 3 * flat_share(noise)
    assert len({tuple(t.tolist()) for t in result.tokens}) == len(labels)  # not one image over and over


def test_bench_json_schema(tiny, tmp_path):
    out = tmp_path / "bench.json"
    md = tmp_path / "bench.md"
    rc = main(["bench", "--per-class", "2", "--seeds", "0,1", "--sampler", "plain,entropy", "--json", str(out),
               "--markdown", str(md)])
    assert rc == 0
    rows = json.loads(out.read_text())
    assert [r["sampler"] for r in rows] == ["plain", "entropy"]
    for r in rows:
        for key in ("sampler", "class_accuracy", "fd", "diversity", "nfe", "seconds_per_image", "entropy_mean",
                    "entropy_var", "class_accuracy_std", "fd_std"):
            assert key in r
        assert 0 <= r["class_accuracy"] <= 1 and r["fd"] >= 0 and r["nfe"] == 256
    assert "| plain |" in md.read_text()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_give_the_same_table_as_one(tmp_path):
    args = ["bench", "--per-class", "2", "--seeds", "0", "--sampler", "plain,entropy"]
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "arsample.cli", *args, "--json", str(one)], check=True, env=env,
                   capture_output=True, timeout=300)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                    "127.0.0.1", "--master_port", str(_free_port()), "-m", "arsample.cli", *args, "--json", str(two)],
                   check=True, env=env, capture_output=True, timeout=300)
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    for ra, rb in zip(a, b):
        for key in ("class_accuracy", "fd", "diversity", "nfe", "entropy_mean", "entropy_var"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-6, abs=1e-9), key


def test_demo_writes_a_comparison_sheet(tmp_path, capsys):
    out = tmp_path / "demo.png"
    assert main(["demo", "--out", str(out), "--classes", "0,5"]) == 0
    text = capsys.readouterr().out
    assert "plain" in text and "entropy" in text and "forward passes" in text
    from PIL import Image

    sheet = np.asarray(Image.open(out))
    assert sheet.shape[0] > 2 * 64 and sheet.shape[1] > 4 * 64  # 2 sampler rows, 2 classes x (image, heatmap)


def test_generate_knows_the_embedded_model_by_name(tmp_path):
    out = tmp_path / "g.png"
    assert main(["generate", "--model", "tiny", "--classes", "1,2", "--out", str(out), "--save-tokens",
                 str(tmp_path / "t.npy"), "--cfg", "3.0", "--device", "cpu"]) == 0
    assert np.load(tmp_path / "t.npy").shape == (2, 256)
