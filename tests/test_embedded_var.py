"""The shipped tiny next-scale model ("tiny-var"): loads by name with VAR's key layout, makes images of the
requested class through its own multi-scale VQ-VAE, and the demo, bench, generate and decode commands run it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from arsample.cli import main
from arsample.lab.dataset import IMAGE_SIZE, make_batch, to_model_range
from arsample.lab.evaluator import frechet_distance, load_evaluator, predict
from arsample.models import registry
from arsample.models.embedded import EMBEDDED_MODELS, embedded_paths, load_embedded
from arsample.models.var import VARCondition, VARTransformer, VARVQVAE
from arsample.samplers import SamplerSettings, named_sampler


@pytest.fixture(scope="module")
def tiny_var():
    var, vqvae = load_embedded("tiny-var")
    return var.bind(vqvae), var, vqvae, load_evaluator("tiny-var")


def _settings() -> SamplerSettings:
    from arsample.cli.embedded_args import EMBEDDED_DEFAULTS

    d = EMBEDDED_DEFAULTS["tiny-var"]
    return SamplerSettings(cfg_scale=d["cfg"], top_k=d["top_k"])


def test_every_embedded_weight_together_fits_the_budget():
    files = {p.resolve() for entry in EMBEDDED_MODELS for p in embedded_paths(entry).values()}
    assert sum(p.stat().st_size for p in files) <= 16 * 1024 * 1024


def test_official_key_layout_and_shape(tiny_var):
    from safetensors import safe_open

    _, var, vqvae, _ = tiny_var
    assert isinstance(var, VARTransformer) and isinstance(vqvae, VARVQVAE)
    assert var.config.patch_nums[-1] == 16 and var.image_size == IMAGE_SIZE  # a readable 16x16 top entropy map
    assert var.vocab_size == vqvae.codebook_size and vqvae.downsample * 16 == IMAGE_SIZE
    paths = embedded_paths("tiny-var")
    for key in ("var", "vqvae"):
        with safe_open(str(paths[key]), "pt") as f:
            keys = set(f.keys())
            assert "arsample_config" in f.metadata()
        assert keys == set(dict(var.state_dict() if key == "var" else vqvae.state_dict()))
    assert {"class_emb.weight", "blocks.0.attn.mat_qkv.weight", "head_nm.ada_lin.1.weight", "lvl_1L"} <= \
        set(var.state_dict())
    assert registry.family_of_file(paths["var"])[0].name == "var"


def test_vqvae_reconstructs_held_out_images(tiny_var):
    _, _, vqvae, _ = tiny_var
    images, _ = make_batch(range(64), seed=12)
    x = to_model_range(images)
    scales = [(p, p) for p in (1, 2, 3, 4, 6, 8, 16)]
    recon = vqvae.decode_tokens(vqvae.encode_tokens(x, scales), scales)
    psnr = 10 * torch.log10(4 / (recon - x).pow(2).mean())
    assert psnr > 22


def test_generated_images_show_the_requested_class(tiny_var):
    """Fixed seed, 3 images per class, plain next-scale sampling at the defaults (chance is 10%; the README's
    500-image benchmark gives the measured accuracy)."""
    pair, _, vqvae, evaluator = tiny_var
    labels = torch.arange(10).repeat_interleave(3)
    sampler = named_sampler("scale", _settings(), "star")
    result = sampler.run(pair, VARCondition(labels=labels), seed=0)
    assert result.stats.forward_passes == 7  # one pass per scale
    pred, _ = predict(evaluator, vqvae.decode_tokens(result.tokens, result.layout.scales))
    assert (pred == labels).float().mean().item() >= 0.75
    shifted = (labels + 1) % 10  # the class decides it: the same seed with shifted labels is recognised as shifted
    other = sampler.run(pair, VARCondition(labels=shifted), seed=0)
    pred_other, _ = predict(evaluator, vqvae.decode_tokens(other.tokens, other.layout.scales))
    assert (pred_other == shifted).float().mean().item() >= 0.75


def test_generated_images_look_like_the_data(tiny_var):
    pair, _, vqvae, evaluator = tiny_var
    labels = torch.arange(10).repeat_interleave(2)
    result = named_sampler("scale", _settings(), "star").run(pair, VARCondition(labels=labels), seed=0)
    scales = result.layout.scales
    images = vqvae.decode_tokens(result.tokens, scales)
    noise_tokens = torch.randint(0, vqvae.codebook_size, result.tokens.shape, generator=torch.Generator().manual_seed(0))
    noise = vqvae.decode_tokens(noise_tokens, scales)
    real, _ = make_batch(range(200), seed=13)
    real_feats = predict(evaluator, to_model_range(real))[1]
    assert frechet_distance(predict(evaluator, images)[1], real_feats) < \
        0.5 * frechet_distance(predict(evaluator, noise)[1], real_feats)
    assert len({tuple(t.tolist()) for t in result.tokens}) == len(labels)


def test_entropy_temperature_changes_the_draws_and_the_entropy_falls_with_scale(tiny_var):
    pair, _, _, _ = tiny_var
    cond = VARCondition(labels=torch.arange(10))
    plain = named_sampler("scale", _settings(), "star").run(pair, cond, seed=1)
    prob = named_sampler("scale-entropy", _settings(), "embedded-var").run(pair, cond, seed=1)
    assert not torch.equal(plain.tokens, prob.tokens)
    # the coarse scales are the uncertain ones: the 1x1 map's entropy is above the 16x16 map's
    ent = plain.entropy.float()
    assert ent[:, 0].mean() > ent[:, -256:].mean()


def test_bench_runs_every_next_scale_sampler(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", "--model", "tiny-var", "--per-class", "1", "--seeds", "0", "--sampler",
                 "scale,scale-entropy,scale-entropy-scalewise,scale-entropy-scalewise:centered",
                 "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r["sampler"] for r in rows] == ["scale", "scale-entropy", "scale-entropy-scalewise",
                                            "scale-entropy-scalewise:centered"]
    assert all(r["nfe"] == 7 for r in rows)
    assert rows[2]["settings"]["scale_wise"] == "centered-normalized" and rows[3]["settings"]["scale_wise"] == "centered"
    assert "scale_wise" not in rows[1]["settings"] and rows[1]["settings"]["t0"] > 0


def test_bench_and_demo_refuse_samplers_of_another_order(capsys):
    assert main(["bench", "--model", "tiny-var", "--sampler", "sjd", "--per-class", "1"]) == 2
    assert "next-scale" in capsys.readouterr().err
    assert main(["bench", "--model", "tiny", "--sampler", "scale-entropy:centered", "--per-class", "1"]) == 2
    assert main(["bench", "--model", "tiny-var", "--sampler", "scale-entropy:centered", "--per-class", "1"]) == 2
    assert "-scalewise" in capsys.readouterr().err


def test_demo_defaults_to_the_next_scale_samplers(tmp_path, capsys):
    out = tmp_path / "demo.png"
    assert main(["demo", "--model", "tiny-var", "--out", str(out), "--classes", "0,5"]) == 0
    text = capsys.readouterr().out
    for name in ("scale", "scale-entropy", "scale-scalewise", "scale-entropy-scalewise"):
        assert f"{name}:" in text
    assert text.count("7 forward passes") == 4


def test_generate_and_decode_round_trip(tmp_path):
    out, tokens = tmp_path / "g.png", tmp_path / "t.npy"
    assert main(["generate", "--model", "tiny-var", "--classes", "0,5", "--out", str(out), "--save-tokens",
                 str(tokens), "--sampler", "entropy", "--device", "cpu"]) == 0
    assert np.load(tokens).shape == (2, 1 + 4 + 9 + 16 + 36 + 64 + 256)
    strip = tmp_path / "strip.png"
    assert main(["decode", "--vq", str(embedded_paths("tiny-var")["vqvae"]), "--tokens", str(tokens),
                 "--out", str(strip)]) == 0
    from PIL import Image

    grid, decoded = np.asarray(Image.open(out)), np.asarray(Image.open(strip))
    assert decoded.shape == (IMAGE_SIZE, 2 * IMAGE_SIZE, 3)
    assert np.array_equal(np.concatenate([grid[:IMAGE_SIZE, :IMAGE_SIZE], grid[:IMAGE_SIZE, -IMAGE_SIZE:]], 1)
                          if grid.shape[1] != 2 * IMAGE_SIZE else grid, decoded)
