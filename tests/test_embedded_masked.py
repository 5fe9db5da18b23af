"""The shipped tiny masked model ("tiny-masked"): loads by name with Meissonic's key layout and its class table,
makes images of the requested class through the tiny LlamaGen VQ, both entropy switches change the run,
the maps hold each token's entropy at its commit step, and the demo, bench, generate and decode commands
run it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from arsample.cli import main
from arsample.lab.dataset import IMAGE_SIZE, make_batch, to_model_range
from arsample.lab.evaluator import frechet_distance, load_evaluator, predict
from arsample.models import registry
from arsample.models.embedded import CLASS_NAMES, embedded_paths, load_embedded
from arsample.models.meissonic import MeissonicTransformer
from arsample.models.meissonic.generator import MeissonicClassCondition, MeissonicGenerator
from arsample.samplers import SamplerSettings, named_sampler
from arsample.samplers.masked import MaskedOptions


@pytest.fixture(scope="module")
def tiny_masked():
    generator, vq = load_embedded("tiny-masked")
    return generator, vq, load_evaluator("tiny-masked")


def _sampler(name: str, steps: int = 16):
    from arsample.cli.embedded_args import EMBEDDED_DEFAULTS

    d = EMBEDDED_DEFAULTS["tiny-masked"]
    return named_sampler(name, SamplerSettings(cfg_scale=d["cfg"], top_k=d["top_k"]), d["preset"],
                         masked=MaskedOptions(steps=steps))


def _decode(vq, tokens):
    return vq.decode_codes(tokens, grid=(16, 16)).clamp(-1, 1)


def test_meissonic_key_layout_class_table_and_tokenizer(tiny_masked):
    from safetensors import safe_open

    generator, vq, _ = tiny_masked
    assert isinstance(generator, MeissonicGenerator) and isinstance(generator.transformer, MeissonicTransformer)
    assert generator.grid == (16, 16) and generator.num_classes == 10 and vq.downsample * 16 == IMAGE_SIZE
    assert generator.vocab_size == vq.codebook_size == generator.mask_id  # the mask id is the row past the codebook
    paths = embedded_paths("tiny-masked")
    with safe_open(str(paths["masked"]), "pt") as f:
        keys = set(f.keys())
    assert keys == set(generator.transformer.state_dict()) | {"class_embedding.states", "class_embedding.pooled"}
    loaded = registry.load_model(paths["masked"], name="embedded:tiny-masked")
    assert (loaded.family.name, loaded.info.kind, loaded.info.preset) == ("meissonic", "class", "embedded-masked")
    assert loaded.info.class_names == CLASS_NAMES
    assert paths["vq"] == embedded_paths("tiny")["vq"]  # the tiny LlamaGen's VQ, shared


def test_generated_images_show_the_requested_class(tiny_masked):
    """Fixed seed, 3 images per class, plain masked sampling at the defaults (chance is 10%; the README's
    500-image benchmark gives the measured accuracy)."""
    generator, vq, evaluator = tiny_masked
    labels = torch.arange(10).repeat_interleave(3)
    sampler = _sampler("masked")
    result = sampler.run(generator, MeissonicClassCondition(labels), seed=0)
    assert result.stats.forward_passes == 16
    pred, _ = predict(evaluator, _decode(vq, result.tokens))
    assert (pred == labels).float().mean().item() >= 0.75
    shifted = (labels + 1) % 10
    other = sampler.run(generator, MeissonicClassCondition(shifted), seed=0)
    assert (predict(evaluator, _decode(vq, other.tokens))[0] == shifted).float().mean().item() >= 0.75


def test_generated_images_look_like_the_data(tiny_masked):
    generator, vq, evaluator = tiny_masked
    labels = torch.arange(10).repeat_interleave(2)
    result = _sampler("masked").run(generator, MeissonicClassCondition(labels), seed=0)
    noise = torch.randint(0, vq.codebook_size, result.tokens.shape, generator=torch.Generator().manual_seed(0))
    real, _ = make_batch(range(200), seed=13)
    real_feats = predict(evaluator, to_model_range(real))[1]
    assert frechet_distance(predict(evaluator, _decode(vq, result.tokens))[1], real_feats) < \
        0.5 * frechet_distance(predict(evaluator, _decode(vq, noise))[1], real_feats)
    assert len({tuple(t.tolist()) for t in result.tokens}) == len(labels)


def test_each_entropy_switch_changes_the_run(tiny_masked):
    generator, _, _ = tiny_masked
    cond = MeissonicClassCondition(torch.arange(10))
    runs = {name: _sampler(name, steps=8).run(generator, cond, seed=1)
            for name in ("masked", "masked-prob", "masked-masking", "masked-prob-masking")}
    tokens = [r.tokens for r in runs.values()]
    assert all(not torch.equal(a, b) for i, a in enumerate(tokens) for b in tokens[i + 1:])
    plain = runs["masked"]
    # plain: every token drawn at temperature 1; "+Masking" alone draws at 1 too (it only re-ranks)
    assert torch.equal(plain.temperature, torch.ones_like(plain.temperature))
    assert torch.equal(runs["masked-masking"].temperature, torch.ones_like(plain.temperature))
    assert not torch.equal(runs["masked-prob"].temperature, torch.ones_like(plain.temperature))
    assert (plain.entropy >= 0).all() and plain.entropy.max() < np.log(128) + 1e-4


def test_bench_runs_every_masked_sampler_at_the_steps_asked(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", "--model", "tiny-masked", "--per-class", "1", "--seeds", "0", "--steps", "8",
                 "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r["sampler"] for r in rows] == ["masked", "masked-prob", "masked-masking", "masked-prob-masking"]
    assert all(r["nfe"] == 8 for r in rows)


def test_commands_refuse_what_does_not_apply(capsys):
    assert main(["bench", "--model", "tiny-masked", "--sampler", "sjd", "--per-class", "1"]) == 2
    assert "masked" in capsys.readouterr().err
    assert main(["bench", "--model", "tiny", "--steps", "8", "--per-class", "1"]) == 2
    assert "--steps applies to masked models" in capsys.readouterr().err
    assert main(["bench", "--model", "tiny-masked", "--steps", "300", "--per-class", "1"]) == 2
    assert "more than the 256 image tokens" in capsys.readouterr().err


def test_demo_generate_and_decode(tmp_path, capsys):
    demo = tmp_path / "demo.png"
    assert main(["demo", "--model", "tiny-masked", "--out", str(demo), "--classes", "0,5", "--steps", "8"]) == 0
    text = capsys.readouterr().out
    for name in ("masked", "masked-prob", "masked-masking", "masked-prob-masking"):
        assert f"{name}:" in text
    assert text.count("8 forward passes") == 4
    out, tokens = tmp_path / "g.png", tmp_path / "t.npy"
    assert main(["generate", "--model", "tiny-masked", "--classes", "0,5", "--out", str(out), "--save-tokens",
                 str(tokens), "--sampler", "entropy", "--masked-entropy", "prob", "--steps", "8"]) == 0
    assert "masked-prob: 8 forward passes" in capsys.readouterr().out
    assert np.load(tokens).shape == (2, 256)
    strip = tmp_path / "strip.png"
    assert main(["decode", "--vq", str(embedded_paths("tiny-masked")["vq"]), "--tokens", str(tokens),
                 "--out", str(strip)]) == 0
    from PIL import Image

    grid, decoded = np.asarray(Image.open(out)), np.asarray(Image.open(strip))  # the grid has a gap between images
    assert decoded.shape == (IMAGE_SIZE, 2 * IMAGE_SIZE, 3)
    assert np.array_equal(np.concatenate([grid[:, :IMAGE_SIZE], grid[:, -IMAGE_SIZE:]], 1), decoded)
    assert main(["generate", "--model", "tiny", "--classes", "0", "--out", str(out), "--steps", "8"]) == 2
    assert "masked models" in capsys.readouterr().err
