"""STAR through the registry: snapshots recognised and loaded as they are, paired with VAR's VQ-VAE (and only
with it), prompt conditions with the pooled vector and the empty prompt, samples and decodes, convert."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from arsample.errors import ARSampleError, CheckpointError, ConfigError, SamplingError
from arsample.models import registry
from arsample.models.checkpoint import read_checkpoint, save_safetensors_atomic
from arsample.samplers import SamplerSettings, named_sampler

GOLDEN = Path(__file__).parent / "fixtures" / "golden"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The golden tiny STAR as a released-style training snapshot, and the golden tiny VAR VQ-VAE."""
    root = tmp_path_factory.mktemp("star")
    state, _ = read_checkpoint(GOLDEN / "star_tiny.safetensors")
    snapshot = {"epoch": 3, "iter": 10, "trainer": {"config": {"patch_nums": [1, 2, 3, 4]}, "var_wo_ddp": state,
                                                     "var_opt": {"step": 1}}}
    torch.save(snapshot, root / "star-tiny.pth")
    torch.save({"epoch": 3, "trainer": {"config": {}}}, root / "no-model.pth")
    return {"star": root / "star-tiny.pth", "broken": root / "no-model.pth",
            "vae": GOLDEN / "var_vqvae_tiny.safetensors", "var": GOLDEN / "var_tiny.safetensors"}


def _features(info, batch: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    width = info.prompt.width
    states = torch.randn(batch, 16, width, generator=gen)
    mask = torch.ones(batch, 16, dtype=torch.long)
    mask[:, 10:] = 0
    pooled = torch.randn(batch, width, generator=gen)
    null = (torch.randn(1, 16, width, generator=gen), mask[:1].clone(), torch.randn(1, width, generator=gen))
    return states, mask, pooled, null


def test_snapshot_is_recognised_and_loads_with_its_scale_list(files):
    family, role = registry.family_of_file(files["star"])
    assert (family.name, role) == ("star", registry.MODEL)
    model = registry.load_model(files["star"])
    assert model.info.kind == registry.PROMPT and model.info.layout == ((1, 1), (2, 2), (3, 3), (4, 4))
    assert model.family.order == "next-scale" and model.info.preset == "star"


def test_snapshot_without_the_trainer_model_entry(files):
    with pytest.raises(CheckpointError, match="'trainer' → 'var_wo_ddp'"):
        registry.load_model(files["broken"])


def test_pairs_with_var_vqvae_only(files, tiny_vq):
    vae = registry.load_tokenizer(files["vae"])
    model = registry.load_model(files["star"], tokenizer=vae)
    registry.check_pair(model.info, vae.info)
    save_safetensors_atomic(tiny_vq.state_dict(), Path(files["star"]).parent / "vq.safetensors",
                            tiny_vq.config.to_metadata())
    llamagen_vq = registry.load_tokenizer(Path(files["star"]).parent / "vq.safetensors")
    with pytest.raises(ConfigError, match="tokenizer"):
        registry.check_pair(model.info, llamagen_vq.info)
    with pytest.raises(ConfigError):
        registry.load_model(files["star"], tokenizer=llamagen_vq)


def test_prompt_condition_samples_and_decodes(files):
    vae = registry.load_tokenizer(files["vae"])
    model = registry.load_model(files["star"], tokenizer=vae)
    states, mask, pooled, null = _features(model.info, 2)
    cond = model.family.prompt_condition(model.info, states, mask, ["a", "b"], pooled=pooled, null=null)
    registry.check_order(model.info, named_sampler("scale", SamplerSettings()).method)
    target = model.family.sampling_model(model.module, vae.module)
    result = named_sampler("scale-entropy", SamplerSettings(cfg_scale=3.0, top_k=8), "star").run(target, cond.value,
                                                                                                 seed=0)
    assert result.tokens.shape == (2, 30) and result.stats.forward_passes == 4
    images = model.family.decode(vae.module, result.tokens, result.layout)
    side = 4 * vae.module.downsample  # the last scale is 4x4
    assert images.shape == (2, 3, side, side) and torch.isfinite(images).all()


def test_what_does_not_fit_is_refused(files):
    model = registry.load_model(files["star"])
    states, mask, pooled, null = _features(model.info, 1)
    with pytest.raises(SamplingError, match="pooled"):
        model.family.prompt_condition(model.info, states, mask, ["a"])
    with pytest.raises(SamplingError, match="do not fit"):
        model.family.prompt_condition(model.info, states[..., :8], mask, ["a"], pooled=pooled[:, :8])
    with pytest.raises(SamplingError, match="text-to-image"):
        model.family.class_condition(model.info, [1])
    with pytest.raises(SamplingError, match="text-to-image"):
        registry.require_kind(model.info, registry.CLASS, "cli")
    with pytest.raises(SamplingError, match="next-token"):
        registry.check_order(model.info, named_sampler("plain", SamplerSettings()).method)
    with pytest.raises(SamplingError, match="VQ-VAE"):
        model.family.sampling_model(model.module)
    var = registry.load_model(files["var"])
    with pytest.raises(SamplingError, match="class"):
        var.family.prompt_condition(var.info, states, mask, ["a"], pooled=pooled)


def test_convert_a_snapshot_and_load_it_back(files, tmp_path, capsys):
    from arsample.cli import main

    out = tmp_path / "star.safetensors"
    assert main(["convert", str(files["star"]), str(out)]) == 0
    assert "STAR model" in capsys.readouterr().out
    back = registry.load_model(out)
    first = registry.load_model(files["star"])
    assert back.info.layout == first.info.layout
    for (k, a), (_, b) in zip(sorted(first.module.state_dict().items()), sorted(back.module.state_dict().items())):
        assert torch.equal(a, b), k
    with pytest.raises(ARSampleError):
        registry.load_tokenizer(files["star"])


def test_generate_with_a_clip_folder(files, tmp_path, capsys):
    """`arsample generate` on a STAR snapshot with --clip (a tiny SD-2.1-style folder, as wide as the model reads):
    writes the images and tokens; a CLIP of another width, --t5 for STAR and --clip for a class model are refused
    before anything is written."""
    pytest.importorskip("transformers")
    import numpy as np

    from arsample.cli import main
    from test_clip_text import WORDS, tiny_clip_vocab, tiny_text_model, write_text_encoder, write_tokenizer

    def sd21(width: int):
        root = tmp_path / f"sd21-{width}"
        vocab, merges = tiny_clip_vocab(WORDS)
        write_tokenizer(root / "tokenizer", vocab, merges)
        write_text_encoder(tiny_text_model(len(vocab), width=width), root / "text_encoder")
        return root

    width = registry.load_model(files["star"]).info.prompt.width
    out, tokens = tmp_path / "star.png", tmp_path / "tokens.npy"
    argv = ["generate", "--gpt", str(files["star"]), "--vq", str(files["vae"]), "--clip", str(sd21(width)),
            "--prompt", "a red fox in the snow", "--prompt", "a cat", "--sampler", "entropy", "--cfg", "3",
            "--out", str(out), "--save-tokens", str(tokens), "--device", "cpu"]
    assert main(argv) == 0
    assert np.load(tokens).shape == (2, 30) and out.stat().st_size > 0
    for flag, value, words in (("--clip", str(sd21(width + 8)), "-wide features"),
                               ("--cross-attn-mode", "sideways", "cross_attn_mode must be one of")):
        bad = list(argv)
        if flag in bad:
            bad[bad.index(flag) + 1] = value
        else:
            bad += [flag, value]
        out.unlink(missing_ok=True)
        assert main(bad) == 2
        assert words in capsys.readouterr().err
        assert not out.exists()
    t5 = list(argv)
    t5[t5.index("--clip")] = "--t5"
    assert main(t5) == 2
    assert "--clip PATH" in capsys.readouterr().err
    var_argv = ["generate", "--gpt", str(files["var"]), "--vq", str(files["vae"]), "--clip", str(sd21(width)),
                "--prompt", "a cat", "--out", str(out)]
    assert main(var_argv) == 2
    assert "class-to-image" in capsys.readouterr().err

