"""Janus-Pro in a real ComfyUI server: a Janus release folder as downloaded, in ``models/autoregressive/`` and in
``models/Janus-Pro/`` (where the ComfyUI-Janus-Pro pack of CY-CHENYUE keeps its downloads), is ONE entry in 'Load AR
Model' and in 'Load VQ Tokenizer' (its VQ is inside); 'Text Condition (Janus-Pro)' (no text encoder) + 'Next-Token
Sampling' or 'Speculative Jacobi Decoding' (+ 'Entropy Temperature') + 'AR Sample' + 'VQ Decode' + 'Entropy Map' give
exactly the tokens, per-token entropies and images of the library on the same folder and seed
(``registry.load_model/load_tokenizer``, ``Family.text_condition``, the catalog methods). What cannot work is a clear
node error after which the server keeps serving. The shipped Janus-Pro workflow (``Janus-Pro-1B/``, 384 px = auto,
cfg 5) runs here on the tiny folder placed as ``models/Janus-Pro/Janus-Pro-1B/``.

The folder: the golden tiny Janus (original layout: config.json, tokenizer.json, pytorch_model.bin) with one change
to its config.json: ``max_position_embeddings`` 256 → 1024, so that the loader's 'auto' size (the reference's
24×24 = 576 image tokens; the tiny VQ decodes 2 px per token, 48×48 pictures) fits the context (RoPE positions: no
weight depends on it). 'Load AR Model' offers no size below 256 px, which the tiny VQ would turn into a 128×128 grid.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from comfyui_env import PACK_DIR, cache_dir, comfyui_python, comfyui_tree  # noqa: E402
from comfyui_server import ComfyServer, execution_error  # noqa: E402
from comfyui_workflows import ui_to_api  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "fixtures" / "golden"
WORKFLOW = ROOT / "workflows" / "ARsample_janus_pro_t2i_compare_samplers.json"
FOLDER = "Janus-Pro-Tiny/"  # in models/autoregressive/
SHARED = "Janus-Pro-1B/"  # in models/Janus-Pro/ (the other pack's folder), the shipped workflow's name
PROMPT = "  A red cube on a wooden table  "
TEMPERATURE = dict(preset="llamagen", t0=2.5, alpha=3.0, theta=0.6, clamp_min=0.0, clamp_max=0.0,
                   entropy_source="filtered")  # a preset keeps its own values: the library's preset("llamagen")
TOKENS, PIXELS = 576, 48

# name → the method node (and its widgets), Entropy Temperature connected, batch size, seed, top-k, the folder entry.
# 'Preview as Text' prints AR_TOKENS in full only up to 1000 numbers: cases compared token by token have batch 1;
# the batch-2 case is compared by its images and stats.
CASES = {
    "plain": dict(sjd=None, temperature=False, batch=1, seed=4, top_k=0, folder=FOLDER),
    "entropy": dict(sjd=None, temperature=True, batch=1, seed=5, top_k=0, folder=SHARED),
    "sjd": dict(sjd=dict(acceptance="exact (lossless)", window=16, init="repeat", coupled=False), temperature=False,
                batch=1, seed=6, top_k=0, folder=FOLDER),
    "sjd_entropy": dict(sjd=dict(acceptance="entropy (lossy, paper rule)", window=16, init="repeat", coupled=False),
                        temperature=True, batch=1, seed=7, top_k=40, folder=FOLDER),
    "coupled": dict(sjd=dict(acceptance="exact (lossless)", window=8, init="repeat", coupled=True), temperature=False,
                    batch=2, seed=8, top_k=0, folder=FOLDER),
}
LABELS = {"plain": "plain", "entropy": "entropy", "sjd": "sjd", "sjd_entropy": "sjd-entropy", "coupled": "coupled"}
RULES = {"exact (lossless)": "exact", "entropy (lossy, paper rule)": "entropy"}

SETUP = r"""
import json, shutil, sys
from pathlib import Path
import numpy as np
import torch
tree, work, golden = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
cases, rules = json.loads(sys.argv[4]), json.loads(sys.argv[5])
sys.path[:0] = [tree, str(work)]
torch.set_num_threads(1)
from safetensors import safe_open
from safetensors.torch import load_file
from arsample_pack import imaging
from arsample_pack.models import registry
from arsample_pack.samplers import (NamedSampler, NextToken, SamplerSettings, SJDSettings, SpeculativeJacobi,
                                    preset)

models = work / "models"
root = models / "autoregressive" / "Janus-Pro-Tiny"
root.mkdir(parents=True)
(models / "vq").mkdir()
with safe_open(str(golden / "janus_tiny.safetensors"), "pt") as f:
    config = json.loads(f.metadata()["config"])
config["language_config"]["max_position_embeddings"] = 1024
(root / "config.json").write_text(json.dumps(config))
shutil.copy(golden / "janus_tiny_tokenizer.json", root / "tokenizer.json")
torch.save(load_file(golden / "janus_tiny.safetensors"), root / "pytorch_model.bin")
shutil.copytree(root, models / "Janus-Pro" / "Janus-Pro-1B")  # CY-CHENYUE/ComfyUI-Janus-Pro's folder

# the library on the same folder, as the nodes run it (the loader's 'auto' size)
vq = registry.load_tokenizer(root)
model = registry.load_model(root)
family = model.family
report = {"layout": [list(s) for s in model.info.layout], "families": [family.name, vq.family.name],
          "encoder_kind": model.info.prompt.encoder_kind}
for name, case in cases.items():
    cond = family.text_condition(model.module, model.info, [case["prompt"]] * case["batch"])
    sjd = case["sjd"]
    method = NextToken() if sjd is None else SpeculativeJacobi(SJDSettings(
        window=sjd["window"], init=sjd["init"], acceptance=rules[sjd["acceptance"]], coupled=sjd["coupled"]))
    settings = SamplerSettings(cfg_scale=5.0, top_k=case["top_k"], top_p=1.0, temperature=1.0, cfg_interval=-1,
                               entropy=preset("llamagen") if case["temperature"] else None)
    result = NamedSampler(name, settings, method).run(model.module, cond.value, seed=case["seed"])
    image = imaging.to_unit_float(family.decode(vq.module, result.tokens, result.layout))
    pixels = np.clip(255.0 * image.cpu().numpy(), 0, 255).astype(np.uint8)  # as SaveImage writes it
    report[name] = {"tokens": result.tokens.tolist(), "entropy": result.entropy.float().tolist(),
                    "passes": result.stats.forward_passes, "pixels": pixels.tolist()}
json.dump(report, open(work / "reference.json", "w"))
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory, run_pack_script) -> tuple[Path, dict]:
    """The models folder (written in the ComfyUI venv) and the library's tokens, entropies and images; plus tiny
    stand-ins of a class-to-image and a text-to-image LlamaGen (for the refusals)."""
    from tinymodels import write_official_standins, write_t2i_standins

    work = tmp_path_factory.mktemp("janus_comfy")
    cases = {name: dict(case, prompt=PROMPT) for name, case in CASES.items()}
    run_pack_script(SETUP, work, GOLDEN, json.dumps(cases), json.dumps(RULES))
    write_official_standins(work / "models")
    write_t2i_standins(work / "models", GOLDEN)
    return work, json.loads((work / "reference.json").read_text())


@pytest.fixture(scope="module")
def reference(setup) -> dict:
    return setup[1]


@pytest.fixture(scope="module")
def server(setup):
    """Its own server, with the tiny Janus folder in models/autoregressive/ and in models/Janus-Pro/."""
    cache = cache_dir()
    tree = comfyui_tree(cache)
    python = comfyui_python(cache, tree)
    comfy = ComfyServer(python, tree, PACK_DIR, models_dir=setup[0] / "models")
    comfy.start()
    try:
        yield comfy
    finally:
        comfy.stop()


def _prompt(tag: str, case: dict, *, model: str | None = None, vq: str | None = None, seed: int | None = None,
            text: str = PROMPT) -> dict:
    """Loaders → Text Condition (Janus-Pro) → a method (+ Entropy Temperature) → AR Sample → tokens as text,
    decode, entropy map, both saved."""
    folder = case["folder"]
    runner = {"model": ["1", 0], "conditioning": ["3", 0], "sampler": ["4", 0], "vq": ["2", 0],
              "seed": case["seed"] if seed is None else seed, "cfg": 5.0, "top_k": case["top_k"], "top_p": 1.0,
              "temperature": 1.0, "cfg_interval": -1, "preview": True}
    if case["temperature"]:
        runner["entropy_temperature"] = ["5", 0]
    method = {"class_type": "ARsampleNextTokenSampling", "inputs": {}} if case["sjd"] is None else \
        {"class_type": "ARsampleSpeculativeJacobi", "inputs": dict(case["sjd"])}
    return {
        "1": {"class_type": "ARsampleModelLoader", "inputs": {"ckpt_name": model or folder, "weight_dtype": "fp32",
                                                              "image_size": "auto"}},
        "2": {"class_type": "ARsampleVQLoader", "inputs": {"vq_name": vq or folder, "weight_dtype": "fp32"}},
        "3": {"class_type": "ARsampleJanusTextCondition", "inputs": {"model": ["1", 0], "prompt": text,
                                                                     "batch_size": case["batch"]}},
        "4": method,
        "5": {"class_type": "ARsampleEntropyTemperature", "inputs": dict(TEMPERATURE)},
        "6": {"class_type": "ARsampleSample", "inputs": runner},
        "7": {"class_type": "PreviewAny", "inputs": {"source": ["6", 0]}},
        "8": {"class_type": "ARsampleVQDecode", "inputs": {"vq": ["2", 0], "tokens": ["6", 0]}},
        "9": {"class_type": "ARsampleEntropyMap", "inputs": {"tokens": ["6", 0], "image": ["8", 0], "overlay": 0.5,
                                                             "max_entropy": 0.0}},
        "10": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": f"{tag}/img"}},
        "11": {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": f"{tag}/map"}},
    }


def _tensor(text: str, field: str) -> list:
    """A tensor field of the AR_TOKENS value as 'Preview as Text' shows it (the dataclass repr)."""
    match = re.search(field + r"=tensor\((\[.*?\])\)", text, re.DOTALL)
    assert match, f"no {field}=tensor(...) in the previewed AR_TOKENS: {text[:300]}"
    assert "..." not in match.group(1), "the tensor was summarised: keep it under 1000 numbers"
    return json.loads(match.group(1))


@pytest.fixture(scope="module")
def runs(server) -> dict:
    out = {}
    for name, case in CASES.items():
        entry = server.run(_prompt(f"janus_{name}", case))
        text = entry["outputs"]["7"]["text"][0]
        out[name] = {"entry": entry, "text": text, "images": server.node_images(entry)}
    return out


def _options(server, node: str, name: str) -> list:
    spec = server.object_info(node)[node]["input"]["required"][name]
    return spec[0] if isinstance(spec[0], list) else spec[1]["options"]  # a V1 combo, or a V3 one


def test_the_folders_are_one_entry_in_both_loaders(server, reference):
    for node, name in (("ARsampleModelLoader", "ckpt_name"), ("ARsampleVQLoader", "vq_name")):
        options = _options(server, node, name)
        assert FOLDER in options and SHARED in options and "embedded:tiny" in options, options
        assert not [o for o in options if o.startswith(("Janus-Pro-Tiny/", "Janus-Pro-1B/")) and not o.endswith("/")]
    assert reference["families"] == ["janus", "janus"] and reference["encoder_kind"] == "own"
    assert reference["layout"] == [[24, 24]]
    info = server.object_info("ARsampleJanusTextCondition")["ARsampleJanusTextCondition"]
    assert info["display_name"] == "Text Condition (Janus-Pro)" and info["category"] == "ARsample"
    assert all(spec[1].get("tooltip") for spec in info["input"]["required"].values())


@pytest.mark.parametrize("name", list(CASES))
def test_the_nodes_give_the_library_tokens_entropies_and_images(runs, reference, name):
    run, ref, case = runs[name], reference[name], CASES[name]
    if case["batch"] == 1:
        assert _tensor(run["text"], "tokens") == ref["tokens"]
        assert np.allclose(_tensor(run["text"], "entropy"), ref["entropy"], atol=1e-3)  # printed to 4 decimals
    assert len(ref["tokens"]) == case["batch"] and all(len(t) == TOKENS for t in ref["tokens"])
    stats = run["entry"]["outputs"]["6"]["text"][0]
    assert stats.split(":")[0] == LABELS[name] and f"{ref['passes']} forward passes" in stats, stats
    images = run["images"]["10"]
    assert len(images) == case["batch"] and all(img.shape == (PIXELS, PIXELS, 3) for img in images)
    for got, want in zip(images, ref["pixels"]):
        assert int(np.abs(got.astype(int) - np.asarray(want, dtype=int)).max()) <= 1
    maps = run["images"]["11"]
    assert len(maps) == case["batch"] and all(m.shape == (PIXELS, PIXELS, 3) for m in maps)


def test_the_speculative_runs_save_passes(reference):
    assert reference["plain"]["passes"] == TOKENS
    assert reference["sjd"]["passes"] < TOKENS and reference["coupled"]["passes"] < TOKENS


def _error(server, prompt: dict) -> dict:
    err = execution_error(server.run(prompt, check=False))
    assert err is not None, "the prompt should have failed"
    message = err["exception_message"]
    assert "Traceback" not in message and "\n" not in message.strip()
    return err


def _ok(server, tag: str) -> None:
    """The server still answers and runs a Janus prompt (a new seed, so nothing comes from the cache)."""
    assert server.get("/system_stats")["system"]
    entry = server.run(_prompt(f"after_{tag}", CASES["plain"], seed=1000 + sum(map(ord, tag))))
    assert entry["status"]["status_str"] == "success"
    assert len(server.node_images(entry)["10"]) == 1


def _class_prompt(tag: str, model: str, vq: str, classes: str) -> dict:
    """A class-to-image graph: Class Condition instead of the Janus text condition."""
    prompt = _prompt(tag, CASES["plain"], model=model, vq=vq)
    prompt["3"] = {"class_type": "ARsampleClassCondition", "inputs": {"model": ["1", 0], "classes": classes,
                                                                      "batch_size": 1}}
    return prompt


@pytest.mark.parametrize("case,node,words", [
    ("janus_text_on_class_model", "ARsampleJanusTextCondition", ["class-to-image model", "'Class Condition'"]),
    ("janus_text_on_t5_model", "ARsampleJanusTextCondition",
     ["FLAN-T5-XL", "'Text Condition (T5)'", "instead of 'Text Condition (Janus-Pro)'"]),
    ("classes_on_janus", "ARsampleClassCondition", ["text-to-image model", "not classes"]),
    ("empty_prompt", "ARsampleJanusTextCondition", ["The prompt is empty"]),
    ("prompt_too_long", "ARsampleJanusTextCondition", ["context leaves room for 448"]),
    ("llamagen_vq_on_janus", "ARsampleSample", ["is a LlamaGen tokenizer but the tokens come from a Janus-Pro model"]),
    ("janus_vq_on_llamagen", "ARsampleSample", ["is a Janus-Pro tokenizer but the tokens come from a LlamaGen model"]),
    ("next_scale_on_janus", "ARsampleSample", ["decodes next-scale", "connect a next-token sampler"]),
    ("missing_folder", "ARsampleModelLoader",
     ["'Janus-Pro-7B/' (ckpt_name)", "models/autoregressive/", "models/Janus-Pro/",
      "huggingface-cli download deepseek-ai/Janus-Pro-1B", "press R"]),
    ("missing_vq_folder", "ARsampleVQLoader", ["'Janus-Pro-7B/' (vq_name)", "huggingface-cli download"]),
])
def test_what_cannot_work_is_refused_and_the_server_keeps_serving(server, case, node, words):
    plain = CASES["plain"]
    if case == "janus_text_on_class_model":
        prompt = _prompt(case, plain, model="embedded:tiny", vq="embedded:tiny")
    elif case == "janus_text_on_t5_model":
        prompt = _prompt(case, plain, model="t2i_XL_stage1_256.pt", vq="vq_ds16_t2i.pt")
    elif case == "classes_on_janus":
        prompt = _class_prompt(case, FOLDER, FOLDER, "1")
    elif case == "empty_prompt":
        prompt = _prompt(case, plain, text=" \n ")
    elif case == "prompt_too_long":
        prompt = _prompt(case, plain, text="cube " * 600)
    elif case == "llamagen_vq_on_janus":
        prompt = _prompt(case, plain, vq="embedded:tiny")
    elif case == "janus_vq_on_llamagen":
        prompt = _class_prompt(case, "embedded:tiny", FOLDER, "circle")
    elif case == "next_scale_on_janus":
        prompt = _prompt(case, plain)
        prompt["4"] = {"class_type": "ARsampleNextScaleSampling",
                       "inputs": {"scale_temperature": "off", "beta": 0.3, "filter_rule": "var"}}
    elif case == "missing_folder":
        prompt = _prompt(case, plain, model="Janus-Pro-7B/")
    else:
        prompt = _prompt(case, plain, vq="Janus-Pro-7B/")
    err = _error(server, prompt)
    assert err["node_type"] == node, err
    for word in words:
        assert word in err["exception_message"], err["exception_message"]
    _ok(server, case)


def test_the_shipped_workflow_runs_on_the_tiny_folder(server):
    """The Janus-Pro workflow as shipped ('Janus-Pro-1B/', found in models/Janus-Pro/; auto size; cfg 5): five rows,
    each 576 tokens decoded by the tiny VQ to 48×48 pictures."""
    raw = json.loads(WORKFLOW.read_text())
    prompt = ui_to_api(raw, server.object_info())
    names = {p["class_type"]: p["inputs"] for p in prompt.values()}
    assert names["ARsampleModelLoader"]["ckpt_name"] == SHARED  # offered here: kept by the converter
    assert names["ARsampleVQLoader"]["vq_name"] == SHARED
    entry = server.run(prompt, timeout=600)
    images = server.node_images(entry)
    saved = [nid for nid, p in prompt.items() if p["class_type"] in ("SaveImage", "PreviewImage")]
    assert len(saved) == 10
    for nid in saved:
        assert len(images[nid]) == 1 and images[nid][0].shape == (PIXELS, PIXELS, 3)
    runners = [nid for nid, p in prompt.items() if p["class_type"] == "ARsampleSample"]
    stats = [entry["outputs"][nid]["text"][0] for nid in runners]
    assert sorted(s.split(":")[0] for s in stats) == sorted(["plain", "entropy", "sjd", "sjd-entropy", "coupled"])
