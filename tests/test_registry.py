"""The family registry (models/registry.py), LlamaGen's and VAR's entries (models/<family>/family.py), without
ComfyUI."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from arsample.errors import ARSampleError, CheckpointError, ConfigError, SamplingError
from arsample.models import registry
from arsample.models.checkpoint import save_safetensors_atomic
from arsample.models.embedded import CLASS_NAMES
from arsample.models.registry import CLASS, MODEL, PROMPT, TOKENIZER, Family, ModelInfo, TokenizerInfo
from arsample.samplers import NextToken, TokenLayout


def _save(module, path):
    save_safetensors_atomic(module.state_dict(), path, module.config.to_metadata())
    return path


@pytest.fixture
def files(tmp_path, tiny_c2i, tiny_t2i, tiny_vq):
    junk = tmp_path / "junk.safetensors"
    save_file({"weight": torch.zeros(3, 3)}, junk)
    return {"c2i": _save(tiny_c2i, tmp_path / "c2i.safetensors"), "t2i": _save(tiny_t2i, tmp_path / "t2i.safetensors"),
            "vq": _save(tiny_vq, tmp_path / "vq.safetensors"), "junk": junk}


@pytest.fixture
def fake_family(monkeypatch):
    """A second, masked-order family registered for one test (to check what crosses families and orders)."""
    class Fake(Family):
        name, title, order = "fake", "FakeMask", "masked"

        def recognise(self, state, metadata):
            return None

    registry.families()
    monkeypatch.setitem(registry._loaded, "fake", Fake())
    return registry.family("fake")


def test_files_are_recognised_as_model_tokenizer_or_nothing(files):
    llamagen = registry.family("llamagen")
    assert registry.family_of_file(files["c2i"]) == (llamagen, MODEL)
    assert registry.family_of_file(files["t2i"]) == (llamagen, MODEL)
    assert registry.family_of_file(files["vq"]) == (llamagen, TOKENIZER)
    with pytest.raises(CheckpointError, match="'junk.safetensors' is not a model or tokenizer of any family.*LlamaGen"):
        registry.family_of_file(files["junk"])
    with pytest.raises(ConfigError, match="Unknown model family 'nope'. Known: llamagen"):
        registry.family("nope")


def test_loading_gives_family_made_info_and_refuses_the_wrong_role(files, tiny_c2i):
    model = registry.load_model(files["c2i"], name="my c2i")
    assert model.family.name == "llamagen" and model.family.order == "next-token"
    assert model.info == ModelInfo("llamagen", "my c2i", CLASS, 64, ((4, 4),), num_classes=10, preset="llamagen")
    torch.testing.assert_close(model.module.output.weight, tiny_c2i.output.weight)
    t2i = registry.load_model(files["t2i"]).info
    assert t2i.kind == PROMPT and (t2i.prompt.length, t2i.prompt.width, t2i.prompt.align) == (12, 16, "left")
    vq = registry.load_tokenizer(files["vq"])
    assert vq.info == TokenizerInfo("llamagen", "vq.safetensors", 64)
    with pytest.raises(CheckpointError, match="VQ tokenizer, not a GPT. Load it with the VQ loader"):
        registry.load_model(files["vq"])
    with pytest.raises(CheckpointError, match="class-to-image GPT, not a VQ"):
        registry.load_tokenizer(files["c2i"])


def test_image_size_override_uses_the_tokenizer_scale(files):
    vq = registry.load_tokenizer(files["vq"])  # 2x downsampling
    assert registry.load_model(files["c2i"], image_size=16, tokenizer=vq).info.layout == ((8, 8),)
    assert registry.load_model(files["c2i"], image_size=128).info.layout == ((8, 8),)  # official 16 px per token


def test_embedded_model_is_listed_with_its_class_names_and_preset():
    assert "tiny" in registry.embedded_names()
    family, files = registry.embedded_files("embedded:tiny")
    assert family.name == "llamagen" and registry.embedded_files("tiny")[1] == files
    info = registry.load_model(files[MODEL], name="embedded:tiny").info
    assert info.class_names == tuple(CLASS_NAMES) and info.preset == "embedded" and info.layout == ((16, 16),)
    with pytest.raises(CheckpointError, match="Unknown embedded model 'huge'. Known: tiny"):
        registry.embedded_files("huge")


def test_the_kind_check_says_what_to_use_in_each_host(files):
    c2i, t2i = registry.load_model(files["c2i"]).info, registry.load_model(files["t2i"]).info
    registry.require_kind(c2i, CLASS, "node")
    with pytest.raises(SamplingError, match="c2i.safetensors is a class-to-image model; use 'Class Condition', not "
                                            "a text prompt."):
        registry.require_kind(c2i, PROMPT, "node")
    with pytest.raises(SamplingError, match="is a text-to-image model; use 'Text Condition \\(T5\\)', not classes."):
        registry.require_kind(t2i, CLASS, "node")
    with pytest.raises(SamplingError, match="class-to-image model; use --classes, not a text prompt"):
        registry.require_kind(c2i, PROMPT, "cli")
    with pytest.raises(SamplingError, match="text-to-image model; use --prompt with --t5, not classes"):
        registry.require_kind(t2i, CLASS, "cli")
    with pytest.raises(ConfigError, match="gives 2048-wide features but t2i.safetensors reads 16-wide captions.*"
                                          "FLAN-T5-XL \\(2048\\)"):
        registry.check_prompt_width(t2i, 2048, "cli")


def test_conditions_are_checked_against_the_model_before_it_is_loaded(files, fake_family):
    family = registry.family("llamagen")
    c2i, t2i = registry.load_model(files["c2i"]).info, registry.load_model(files["t2i"]).info
    cond = family.class_condition(c2i, [1, 9], ["one", "nine"])
    assert cond.kind == CLASS and cond.batch_size == 2 and cond.value.labels.tolist() == [1, 9]
    family.check_condition(c2i, cond, "node")
    with pytest.raises(SamplingError, match="Class id out of range: 10; c2i.safetensors knows 0..9."):
        family.class_condition(c2i, [10])
    with pytest.raises(SamplingError, match="text-to-image model; use 'Text Condition"):
        family.check_condition(t2i, cond, "node")
    prompt = family.prompt_condition(t2i, torch.zeros(1, 12, 16), torch.ones(1, 12), ["a cat"])
    family.check_condition(t2i, prompt, "node")
    with pytest.raises(SamplingError, match="do not fit t2i.safetensors, which reads \\(batch, 12, 16\\)"):
        family.prompt_condition(t2i, torch.zeros(1, 12, 8), torch.ones(1, 12), ["a cat"])
    foreign = registry.Condition("fake", CLASS, None, ("x",))
    with pytest.raises(SamplingError, match="made for a FakeMask model but c2i.safetensors is a LlamaGen model"):
        family.check_condition(c2i, foreign, "node")


def test_class_names_and_ids_are_parsed_once_for_every_host():
    info = ModelInfo("llamagen", "tiny", CLASS, 128, ((16, 16),), num_classes=10, class_names=tuple(CLASS_NAMES))
    assert registry.parse_classes("circle, 5,\nDOTS", info) == ([0, 5, 9], ["circle", "ring", "dots"])
    with pytest.raises(SamplingError, match="Unknown class 'hexagon' for tiny. Known names include: circle"):
        registry.parse_classes("hexagon", info)
    with pytest.raises(SamplingError, match="out of range: 12; tiny knows 0..9"):
        registry.parse_classes("3, 12", info)
    with pytest.raises(SamplingError, match="No class given"):
        registry.parse_classes(" , ", info)


def test_pairing_is_checked_once_for_models_tokens_and_modules(files, fake_family, tiny_c2i):
    from arsample.models.llamagen import LlamaGenVQ, check_pair
    from tinymodels import randomize_, tiny_vq_config

    model = registry.load_model(files["c2i"]).info
    vq = registry.load_tokenizer(files["vq"]).info
    registry.check_pair(model, vq)
    small = TokenizerInfo("llamagen", "vq32.safetensors", 32)
    with pytest.raises(ConfigError, match="predicts 64 token ids but vq32.safetensors has 32 codes: they were not "
                                          "trained together"):
        registry.check_pair(model, small)
    with pytest.raises(ConfigError, match="vq.safetensors is a LlamaGen tokenizer but the tokens come from a FakeMask"):
        registry.check_pair(ModelInfo("fake", "m", CLASS, 64, ((4, 4),)), vq)
    with pytest.raises(ConfigError, match="not trained together"):  # the module-level check stays importable
        check_pair(tiny_c2i, randomize_(LlamaGenVQ(tiny_vq_config(codebook_size=32))))


def test_a_sampler_of_another_order_is_refused(files, fake_family):
    registry.check_order(registry.load_model(files["c2i"]).info, NextToken())
    masked = ModelInfo("fake", "mask.safetensors", CLASS, 64, ((4, 4),))
    with pytest.raises(SamplingError, match="sampler 'plain' decodes next-token but mask.safetensors is a FakeMask "
                                            "model that decodes masked: connect a masked sampler"):
        registry.check_order(masked, NextToken())


def test_decode_follows_the_layout(tiny_vq):
    family = registry.family("llamagen")
    tokens = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(0))
    square = family.decode(tiny_vq, tokens, TokenLayout.grid(4))
    torch.testing.assert_close(square, tiny_vq.decode_codes(tokens))
    wide = family.decode(tiny_vq, tokens, TokenLayout.grid(2, 8))  # 2x8 tokens → 4x16 pixels
    assert wide.shape == (2, 3, 4, 16)
    torch.testing.assert_close(wide, tiny_vq.decode_codes(tokens.reshape(2, 2, 8)))
    assert family.layout_for(16) == ((4, 4),)
    with pytest.raises(ARSampleError, match="one token grid"):
        family.decode(tiny_vq, tokens, TokenLayout(((2, 2), (2, 6))))


def test_hosts_reach_families_through_the_registry_only():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cli = [root / "cli" / f"{n}.py" for n in ("generate", "demo", "decode", "convert")]
    hosts = sorted((root / "nodes").glob("*.py")) + cli
    families = "|".join(registry._FAMILIES)
    pattern = re.compile(rf"^\s*(from|import)\s+\S*models\.({families})\b", re.M)
    offenders = [p.relative_to(root).as_posix() for p in hosts if pattern.search(p.read_text())]
    assert offenders == [], f"import a family package directly instead of models.registry: {offenders}"


# -- VAR (registered beside LlamaGen) ------------------------------------------------------------
def test_var_is_registered_and_each_vq_file_goes_to_its_own_family(golden):
    from arsample.models.checkpoint import read_checkpoint
    from arsample.models.llamagen.config import detect_kind as llamagen_kind
    from arsample.models.var.config import detect_kind as var_kind

    assert "var" in registry._FAMILIES and registry.family("var").order == "next-scale"
    assert registry.family("var").needs_tokenizer and not registry.family("llamagen").needs_tokenizer
    kinds = {}
    for name in ("vq", "var_vqvae_tiny", "var_tiny", "var_tiny_shared", "gpt_c2i", "gpt_t2i"):
        state, _ = read_checkpoint(golden / f"{name}.safetensors")
        kinds[name] = (llamagen_kind(state), var_kind(state))
    assert kinds == {"vq": ("vq", "unknown"), "var_vqvae_tiny": ("unknown", "var-vqvae"),
                     "var_tiny": ("unknown", "var"), "var_tiny_shared": ("unknown", "var"),
                     "gpt_c2i": ("gpt-c2i", "unknown"), "gpt_t2i": ("gpt-t2i", "unknown")}
    llamagen, var = registry.family("llamagen"), registry.family("var")
    assert registry.family_of_file(golden / "vq.safetensors") == (llamagen, TOKENIZER)
    assert registry.family_of_file(golden / "var_vqvae_tiny.safetensors") == (var, TOKENIZER)
    assert registry.family_of_file(golden / "var_tiny.safetensors") == (var, MODEL)
    with pytest.raises(ConfigError, match="Known: llamagen, var"):
        registry.family("nope")


def test_var_loads_through_the_registry_and_pairs_with_its_vq_vae_only(golden):
    vae = registry.load_tokenizer(golden / "var_vqvae_tiny.safetensors")
    model = registry.load_model(golden / "var_tiny.safetensors", tokenizer=vae)
    scales = ((1, 1), (2, 2), (3, 3), (4, 4), (6, 6))
    assert model.info == ModelInfo("var", "var_tiny.safetensors", CLASS, 64, scales, num_classes=10, preset="star")
    assert vae.info == TokenizerInfo("var", "var_vqvae_tiny.safetensors", 64)
    registry.check_pair(model.info, vae.info)
    with pytest.raises(ConfigError, match="is a LlamaGen tokenizer but the tokens come from a VAR model"):
        registry.check_pair(model.info, registry.load_tokenizer(golden / "vq.safetensors").info)
    with pytest.raises(SamplingError, match="connect the VQ-VAE"):
        model.family.sampling_model(model.module)
    assert model.family.sampling_model(model.module, vae.module).token_layout == scales


def test_next_scale_catalog_entries_and_the_order_check(golden):
    from arsample.samplers import (CATALOG_NAMES, SAMPLER_NAMES, SCALE_SAMPLER_NAMES, NextScale, NextScaleOptions,
                                   SamplerSettings, ScaleTemperature, named_sampler, preset, sampler_names)

    assert SCALE_SAMPLER_NAMES == ("scale", "scale-entropy", "scale-scalewise", "scale-entropy-scalewise")
    assert sampler_names("next-scale") == SCALE_SAMPLER_NAMES and "scale" not in SAMPLER_NAMES
    assert CATALOG_NAMES == SAMPLER_NAMES + SCALE_SAMPLER_NAMES + sampler_names("masked")
    assert sampler_names("masked") == ("masked", "masked-prob", "masked-masking", "masked-prob-masking")
    from arsample.samplers import Masked, MaskedOptions

    for name in sampler_names("masked"):  # the name sets the entropy switches; given options set the rest
        masked = named_sampler(name, SamplerSettings(), "meissonic", masked=MaskedOptions(steps=8, prob=False))
        assert isinstance(masked.method, Masked) and masked.method.options.steps == 8
        assert masked.method.label(masked.settings.entropy is not None) == name
        assert (masked.settings.entropy == preset("meissonic")) == (name != "masked")
    base = SamplerSettings(cfg_scale=1.5)
    built = {n: named_sampler(n, base, "star") for n in SCALE_SAMPLER_NAMES}
    for name, sampler in built.items():
        assert isinstance(sampler.method, NextScale) and sampler.method.order == "next-scale"
        assert sampler.method.label(sampler.settings.entropy is not None) == name
    assert built["scale"].settings.entropy is None and built["scale"].method == NextScale()
    assert built["scale-entropy"].settings.entropy == preset("star")
    assert built["scale-scalewise"].method.options.scale_temperature == ScaleTemperature()
    given = NextScaleOptions(filter_rule="llamagen", scale_temperature=ScaleTemperature("centered", beta=0.5))
    assert named_sampler("scale", base, next_scale=given).method.options == NextScaleOptions(filter_rule="llamagen")
    assert named_sampler("scale-entropy-scalewise", base, next_scale=given).method.options == given
    assert named_sampler("scale-scalewise", base, next_scale=NextScaleOptions()).method.options.scale_temperature \
        == ScaleTemperature()
    with pytest.raises(SamplingError, match="Unknown sampler 'nope'. Known: plain.*scale-entropy-scalewise"):
        named_sampler("nope", base)

    var = registry.load_model(golden / "var_tiny.safetensors").info
    registry.check_order(var, built["scale"].method)
    with pytest.raises(SamplingError, match="sampler 'plain' decodes next-token but var_tiny.safetensors is a VAR "
                                            "model that decodes next-scale: connect a next-scale sampler"):
        registry.check_order(var, NextToken())
    llamagen = ModelInfo("llamagen", "c2i.safetensors", CLASS, 64, ((4, 4),))
    with pytest.raises(SamplingError, match="sampler 'scale' decodes next-scale but c2i.safetensors is a LlamaGen "
                                            "model that decodes next-token"):
        registry.check_order(llamagen, built["scale"].method)
