"""VAR in ComfyUI (issue 12): the loaders list and load the golden tiny VAR and its VQ-VAE from the models folders
through the registry, 'AR Sample' with 'Next-Scale Sampling' samples through the VQ-VAE (the 'vq' input) and
gives the tokens of ``sample_next_scale`` on the same files and seed, 'VQ Decode' and 'Entropy Map' (one map per
scale) draw them, and what cannot work (a next-token sampler on VAR, the next-scale sampler on LlamaGen, no
VQ-VAE) is refused before the model is loaded.

In-process in the ComfyUI venv (the nodes' execute methods), as test_sampler_values_in_comfyui.py.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"

SCRIPT = r"""
import json, sys, torch
tree, link_dir, out, models = sys.argv[1:5]
sys.path[:0] = [tree, link_dir]
from comfy.cli_args import args
args.cpu = True
import comfy.model_management as mm
import folder_paths
from arsample_pack.nodes import paths
from arsample_pack.nodes.conditioning import ClassCondition
from arsample_pack.nodes.decode import EntropyMap, VQDecode
from arsample_pack.nodes.loaders import ModelLoader, VQLoader
from arsample_pack.nodes.sampler_options import NextScaleSampling, NextTokenSampling, SpeculativeJacobiDecoding
from arsample_pack.nodes.sampling import ARSample
from arsample_pack.nodes.temperature import EntropyTemperatureNode
from arsample_pack.models import registry
from arsample_pack.models.var import VARCondition
from arsample_pack.samplers import SamplerSettings, preset
from arsample_pack.samplers.next_scale import NextScaleOptions, ScaleTemperature, sample_next_scale

folder_paths.add_model_folder_path("autoregressive", models + "/autoregressive")
folder_paths.add_model_folder_path("vq", models + "/vq")

def first(out):
    return out.result[0]

report = {"choices": {"model": paths.choices(paths.GPT_FOLDER), "vq": paths.choices(paths.VQ_FOLDER)}}
model = first(ModelLoader.execute("var_tiny.safetensors", "fp32", "auto"))
vq = first(VQLoader.execute("vae_tiny.safetensors", "fp32"))
report["family"] = [model.family.name, vq.family.name]
cond = first(ClassCondition.execute(model, "1, 2", 1))
shared = dict(model=model, conditioning=cond, seed=7, cfg=1.5, top_k=0, top_p=1.0, temperature=1.0, cfg_interval=-1)

def loaded(handle):
    return any(m.model is handle.patcher for m in mm.current_loaded_models)

def refused(call, handle):
    try:
        call()
        return None
    except Exception as exc:
        return [type(exc).__name__, str(exc), loaded(handle)]

tiny = first(ModelLoader.execute("embedded:tiny", "fp32", "auto"))
tiny_cond = first(ClassCondition.execute(tiny, "circle", 1))
tiny_shared = dict(shared, model=tiny, conditioning=tiny_cond)
plain = first(NextScaleSampling.execute("off", 0.3, "var"))
report["errors"] = {
    "sjd": refused(lambda: ARSample.execute(sampler=first(SpeculativeJacobiDecoding.execute("exact (lossless)", 16,
                                                                                            "repeat", False)),
                                            vq=vq, **shared), model),
    "next_token": refused(lambda: ARSample.execute(sampler=first(NextTokenSampling.execute()), vq=vq, **shared), model),
    "no_vq": refused(lambda: ARSample.execute(sampler=plain, **shared), model),
    "scale_on_llamagen": refused(lambda: ARSample.execute(sampler=plain, **tiny_shared), tiny),
}

files = {"model": folder_paths.get_full_path("autoregressive", "var_tiny.safetensors"),
         "vq": folder_paths.get_full_path("vq", "vae_tiny.safetensors")}
vae = registry.load_tokenizer(files["vq"])
var = registry.load_model(files["model"], tokenizer=vae)
labels = VARCondition(labels=torch.tensor([1, 2]))
star = dict(preset="star", t0=2.5, alpha=3.0, theta=0.5, clamp_min=0.0, clamp_max=0.0, entropy_source="filtered")
runs = {
    "plain": (plain, None, NextScaleOptions(), None),
    "scalewise": (first(NextScaleSampling.execute("centered-normalized", 0.3, "var")), None,
                  NextScaleOptions(scale_temperature=ScaleTemperature("centered-normalized", beta=0.3)), None),
    "entropy": (first(NextScaleSampling.execute("centered", 0.5, "llamagen")),
                first(EntropyTemperatureNode.execute(**star)),
                NextScaleOptions(filter_rule="llamagen", scale_temperature=ScaleTemperature("centered", beta=0.5)),
                preset("star")),
}
report["runs"] = {}
for name, (sampler, temperature, options, entropy) in runs.items():
    tokens, stats = ARSample.execute(sampler=sampler, entropy_temperature=temperature, vq=vq, preview=True,
                                     **shared).result
    settings = SamplerSettings(cfg_scale=1.5, entropy=entropy)
    ref = sample_next_scale(var.module.bind(vae.module), labels, settings, seed=7, options=options)
    image = first(VQDecode.execute(vq=vq, tokens=tokens))
    ref_image = ((var.family.decode(vae.module, ref.tokens, ref.layout) + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1)
    emap = first(EntropyMap.execute(tokens=tokens, overlay=0.5, max_entropy=0.0, image=image))
    report["runs"][name] = {
        "tokens": tokens.tokens.tolist(), "ref": ref.tokens.tolist(), "stats": stats,
        "layout": list(map(list, tokens.layout.scales)), "image": list(image.shape),
        "image_diff": float((image.float().cpu() - ref_image.float()).abs().max()), "map": list(emap.shape)}
json.dump(report, open(out, "w"))
"""


@pytest.fixture(scope="module")
def outcome(tmp_path_factory, run_pack_script):
    work = tmp_path_factory.mktemp("var_nodes")
    models = work / "models"
    (models / "autoregressive").mkdir(parents=True)
    (models / "vq").mkdir()
    shutil.copy(GOLDEN / "var_tiny.safetensors", models / "autoregressive" / "var_tiny.safetensors")
    shutil.copy(GOLDEN / "var_vqvae_tiny.safetensors", models / "vq" / "vae_tiny.safetensors")
    out = work / "out.json"
    run_pack_script(SCRIPT, work, out, models)
    return json.loads(out.read_text())


def test_loaders_list_and_load_var_through_the_registry(outcome):
    assert "var_tiny.safetensors" in outcome["choices"]["model"]
    assert "vae_tiny.safetensors" in outcome["choices"]["vq"]
    assert outcome["family"] == ["var", "var"]


@pytest.mark.parametrize("name", ["plain", "scalewise", "entropy"])
def test_next_scale_node_gives_the_library_tokens_and_image(outcome, name):
    run = outcome["runs"][name]
    assert run["tokens"] == run["ref"]
    assert run["layout"] == [[1, 1], [2, 2], [3, 3], [4, 4], [6, 6]] and len(run["tokens"][0]) == 66
    assert run["image"] == [2, 12, 12, 3] and run["image_diff"] < 1e-5
    assert run["map"] == [2, 12, 5 * 12, 3]  # one entropy map per scale, side by side (tiny VQ-VAE: 2 px a token)
    label = {"plain": "scale", "scalewise": "scale-scalewise", "entropy": "scale-entropy-scalewise"}[name]
    assert run["stats"].split(":")[0] == label


def test_the_scale_wise_factor_changes_the_tokens(outcome):
    runs = outcome["runs"]
    assert runs["plain"]["tokens"] != runs["scalewise"]["tokens"]


@pytest.mark.parametrize("case,words", [
    ("sjd", ["'sjd' decodes next-token", "VAR model that decodes next-scale", "connect a next-scale sampler"]),
    ("next_token", ["'plain' decodes next-token", "connect a next-scale sampler"]),
    ("no_vq", ["samples through its tokenizer", "'vq' input of 'AR Sample'"]),
    ("scale_on_llamagen", ["'scale' decodes next-scale", "decodes next-token", "connect a next-token sampler"]),
])
def test_what_cannot_work_is_refused_before_loading(outcome, case, words):
    kind, message, was_loaded = outcome["errors"][case]
    assert kind == "SamplingError" and not was_loaded
    assert "\n" not in message
    for word in words:
        assert word in message
