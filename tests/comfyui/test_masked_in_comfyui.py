"""The masked order in a real ComfyUI server: 'Masked Sampling' → 'AR Sample' on the embedded masked model
(``embedded:tiny-masked``, decoded by the tiny LlamaGen VQ) gives exactly the tokens, per-token entropies and images
of the library's ``sample_masked`` for the same seed and options, the '+Prob.' / '+Masking' switches act only with an
'Entropy Temperature' connected, 'Entropy Map' draws the result, and what cannot work (a next-token sampler on the
masked model, the masked sampler on a next-token model, more steps than tokens, bad widget values, a cfg interval)
is a clear error after which the server keeps serving. The shipped masked workflow is checked against the live
node definitions here (``test_pack_in_comfyui.py`` runs it with every other shipped workflow).

The reference tokens are computed in the ComfyUI venv (same torch as the server), in-process; the server's tokens
come back through ComfyUI's own 'Preview as Text' of the AR_TOKENS value. Nothing here depends on the quality of
the embedded weights, only on behaviour.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from comfyui_server import PromptRejected, execution_error  # noqa: E402
from comfyui_workflows import ui_to_api  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "workflows" / "ARsample_embedded_masked_compare_samplers.json"
MODEL = "embedded:tiny-masked"
CLASSES = "circle, ring"  # labels 0 and 5: a batch of two
SHARED = dict(cfg=2.0, top_k=0, top_p=1.0, temperature=1.0, cfg_interval=-1)
TEMPERATURE = dict(preset="meissonic", t0=2.5, alpha=3.0, theta=0.6, clamp_min=0.0, clamp_max=0.0,
                   entropy_source="filtered")  # a preset keeps its own values: the library's preset("meissonic")

# name → (Masked Sampling widgets, entropy temperature connected, seed)
CASES = {
    "plain": (dict(steps=16, schedule="cosine", choice_temperature_start=2.0, choice_temperature_end=0.0, prob=True,
                   masking=True), False, 5),  # the switches are on but nothing is connected: plain decoding
    "prob": (dict(steps=16, schedule="cosine", choice_temperature_start=2.0, choice_temperature_end=0.0, prob=True,
                  masking=False), True, 5),
    "masking": (dict(steps=16, schedule="cosine", choice_temperature_start=2.0, choice_temperature_end=0.0,
                     prob=False, masking=True), True, 5),
    "both": (dict(steps=16, schedule="cosine", choice_temperature_start=2.0, choice_temperature_end=0.0, prob=True,
                  masking=True), True, 5),
    "switches_off": (dict(steps=16, schedule="cosine", choice_temperature_start=2.0, choice_temperature_end=0.0,
                          prob=False, masking=False), True, 5),  # connected, both off: plain again
    "both_linear": (dict(steps=10, schedule="linear", choice_temperature_start=3.0, choice_temperature_end=0.5,
                         prob=True, masking=True), True, 9),
}
LABELS = {"plain": "masked", "prob": "masked-prob", "masking": "masked-masking", "both": "masked-prob-masking",
          "switches_off": "masked", "both_linear": "masked-prob-masking"}

SCRIPT = r"""
import json, sys
import numpy as np
tree, link_dir, out, cases = sys.argv[1:5]
sys.path[:0] = [tree, link_dir]
from comfy.cli_args import args
args.cpu = True
from arsample_pack import imaging
from arsample_pack.models.registry import MODEL, TOKENIZER, embedded_files, load_model, load_tokenizer
from arsample_pack.samplers import SamplerSettings, preset
from arsample_pack.samplers.masked import MaskedOptions, sample_masked

_, files = embedded_files("tiny-masked")
model = load_model(files[MODEL], dtype="fp32", name="embedded:tiny-masked")
vq = load_tokenizer(files[TOKENIZER])
family = model.family
cond = family.class_condition(model.info, [0, 5])
report = {}
for name, (w, temperature, seed) in json.loads(cases).items():
    settings = SamplerSettings(cfg_scale=2.0, top_k=0, top_p=1.0, temperature=1.0, cfg_interval=-1,
                               entropy=preset("meissonic") if temperature else None)
    options = MaskedOptions(steps=w["steps"], schedule=w["schedule"],
                            choice_temperature=(w["choice_temperature_start"], w["choice_temperature_end"]),
                            prob=w["prob"], masking=w["masking"])
    result = sample_masked(family.sampling_model(model.module), cond.value, settings, options=options, seed=seed)
    image = imaging.to_unit_float(family.decode(vq.module, result.tokens, result.layout))
    pixels = np.clip(255.0 * image.cpu().numpy(), 0, 255).astype(np.uint8)  # as SaveImage writes it
    report[name] = {"tokens": result.tokens.tolist(), "entropy": result.entropy.float().tolist(),
                    "passes": result.stats.forward_passes, "pixels": pixels.tolist()}
json.dump(report, open(out, "w"))
"""


@pytest.fixture(scope="module")
def reference(tmp_path_factory, run_pack_script) -> dict:
    """The library's tokens, entropies and images for every case, in the ComfyUI venv."""
    work = tmp_path_factory.mktemp("masked_reference")
    out = work / "out.json"
    run_pack_script(SCRIPT, work, out, json.dumps(CASES))
    return json.loads(out.read_text())


def _prompt(tag: str, widgets: dict, temperature: bool, seed: int, model: str = MODEL, **changes) -> dict:
    """Loaders → Class Condition → Masked Sampling (+ Entropy Temperature) → AR Sample → tokens as text, decode,
    entropy map over the image, both saved."""
    runner = {"model": ["1", 0], "conditioning": ["3", 0], "sampler": ["4", 0], "seed": seed, **SHARED,
              "vq": ["2", 0], "preview": True, **changes}
    if temperature:
        runner["entropy_temperature"] = ["5", 0]
    return {
        "1": {"class_type": "ARsampleModelLoader", "inputs": {"ckpt_name": model, "weight_dtype": "fp32",
                                                              "image_size": "auto"}},
        "2": {"class_type": "ARsampleVQLoader", "inputs": {"vq_name": model, "weight_dtype": "fp32"}},
        "3": {"class_type": "ARsampleClassCondition", "inputs": {"model": ["1", 0], "classes": CLASSES,
                                                                 "batch_size": 1}},
        "4": {"class_type": "ARsampleMaskedSampling", "inputs": dict(widgets)},
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
    """A tensor field of the AR_TOKENS value as 'Preview as Text' shows it (the dataclass repr; at 512 values torch
    prints every one)."""
    match = re.search(field + r"=tensor\((\[.*?\])\)", text, re.DOTALL)
    assert match, f"no {field}=tensor(...) in the previewed AR_TOKENS: {text[:300]}"
    return json.loads(match.group(1))


def _ok(server, tag: str) -> None:
    """The server still answers and runs a masked prompt (a new seed, so nothing comes from the cache)."""
    assert server.get("/system_stats")["system"]
    seed = 1000 + sum(map(ord, tag))
    entry = server.run(_prompt(f"after_{tag}", CASES["both"][0], True, seed))
    assert entry["status"]["status_str"] == "success"


@pytest.fixture(scope="module")
def runs(comfy) -> dict:
    """Every case through the server: the history entry and the tokens and entropies it previewed."""
    out = {}
    for name, (widgets, temperature, seed) in CASES.items():
        entry = comfy.run(_prompt(f"masked_{name}", widgets, temperature, seed))
        text = entry["outputs"]["7"]["text"][0]
        out[name] = {"entry": entry, "tokens": _tensor(text, "tokens"), "entropy": _tensor(text, "entropy"),
                     "images": comfy.node_images(entry)}
    return out


def test_masked_sampling_node_is_defined_with_its_widgets(comfy):
    info = comfy.object_info("ARsampleMaskedSampling")["ARsampleMaskedSampling"]
    assert info["category"] == "ARsample" and info["display_name"] == "Masked Sampling"
    assert info["output"] == ["AR_SAMPLER"]
    for words in ("MaskGIT", "Entropy Temperature", "+Prob.", "+Masking", "plain", "AR Sample"):
        assert words in info["description"], words
    required = info["input"]["required"]
    assert info["input_order"]["required"] == ["steps", "schedule", "choice_temperature_start",
                                               "choice_temperature_end", "prob", "masking"]
    for name, spec in required.items():
        assert spec[1].get("tooltip"), f"{name} has no tooltip"
    steps = required["steps"][1]
    assert (steps["default"], steps["min"], steps["max"]) == (16, 1, 256)
    assert all(n in steps["tooltip"] for n in ("48", "64", "12"))
    assert required["schedule"][1]["options"] == ["cosine", "linear"] and required["schedule"][1]["default"] == "cosine"
    assert required["choice_temperature_start"][1]["default"] == 2.0
    assert required["choice_temperature_end"][1]["default"] == 0.0
    assert required["prob"][1]["default"] is True and required["masking"][1]["default"] is True
    assert "Entropy Temperature" in required["prob"][1]["tooltip"]
    assert "Entropy Temperature" in required["masking"][1]["tooltip"]


def test_the_loaders_list_the_embedded_masked_model(comfy):
    for node, name in (("ARsampleModelLoader", "ckpt_name"), ("ARsampleVQLoader", "vq_name")):
        spec = comfy.object_info(node)[node]["input"]["required"][name]
        assert MODEL in spec[1].get("options", spec[0]), node


@pytest.mark.parametrize("name", list(CASES))
def test_the_nodes_give_the_library_tokens_entropies_and_images(runs, reference, name):
    run, ref = runs[name], reference[name]
    assert len(run["tokens"]) == 2 and len(run["tokens"][0]) == 256
    assert run["tokens"] == ref["tokens"]
    # each token's entropy is the one of the step it was committed at (printed to 4 decimals)
    assert np.allclose(run["entropy"], ref["entropy"], atol=1e-3)
    stats = run["entry"]["outputs"]["6"]["text"][0]
    assert stats.split(":")[0] == LABELS[name]
    assert f"{ref['passes']} forward passes" in stats and ref["passes"] == CASES[name][0]["steps"]
    images = run["images"]["10"]
    assert len(images) == 2 and all(img.shape == (32, 32, 3) for img in images)
    for got, want in zip(images, ref["pixels"]):
        assert int(np.abs(got.astype(int) - np.asarray(want, dtype=int)).max()) <= 1


@pytest.mark.parametrize("name", ["plain", "both_linear"])
def test_the_entropy_map_draws_the_masked_result(runs, name):
    maps = runs[name]["images"]["11"]
    assert len(maps) == 2 and all(m.shape == (32, 32, 3) for m in maps)  # one grid: the image's size


def test_the_switches_act_only_with_the_entropy_temperature(runs):
    tokens = {name: runs[name]["tokens"] for name in CASES}
    assert tokens["switches_off"] == tokens["plain"]  # connected, both off: plain decoding
    for a, b in (("plain", "prob"), ("plain", "masking"), ("plain", "both"), ("prob", "masking"), ("prob", "both"),
                 ("masking", "both")):
        assert tokens[a] != tokens[b], (a, b)


def _error(server, prompt: dict) -> dict:
    err = execution_error(server.run(prompt, check=False))
    assert err is not None, "the prompt should have failed"
    assert "Traceback" not in err["exception_message"] and "\n" not in err["exception_message"].strip()
    return err


def test_a_next_token_sampler_on_the_masked_model_is_refused(comfy):
    prompt = _prompt("next_token_on_masked", CASES["plain"][0], False, 21)
    prompt["4"] = {"class_type": "ARsampleNextTokenSampling", "inputs": {}}
    err = _error(comfy, prompt)
    assert err["node_type"] == "ARsampleSample" and err["exception_type"].endswith("SamplingError")
    for words in ("'plain' decodes next-token", "Meissonic model that decodes masked", "connect a masked sampler"):
        assert words in err["exception_message"], err["exception_message"]
    _ok(comfy, "next_token_on_masked")


def test_the_masked_sampler_on_a_next_token_model_is_refused(comfy):
    err = _error(comfy, _prompt("masked_on_next_token", CASES["both"][0], True, 22, model="embedded:tiny"))
    assert err["node_type"] == "ARsampleSample" and err["exception_type"].endswith("SamplingError")
    for words in ("'masked' decodes masked", "LlamaGen model that decodes next-token", "connect a next-token sampler"):
        assert words in err["exception_message"], err["exception_message"]
    _ok(comfy, "masked_on_next_token")


def test_more_steps_than_tokens_is_refused_by_the_sampler(comfy):
    """The widget stops at 256; a linked value (ComfyUI checks no range on links) reaches the sampler, which knows
    the grid and refuses it."""
    prompt = _prompt("steps_300", CASES["both"][0], True, 23)
    prompt["12"] = {"class_type": "PrimitiveInt", "inputs": {"value": 300}}
    prompt["4"]["inputs"]["steps"] = ["12", 0]
    err = _error(comfy, prompt)
    assert err["node_type"] == "ARsampleSample" and err["exception_type"].endswith("SamplingError")
    assert "300 steps is more than the 256 image tokens" in err["exception_message"]
    assert "at most 256 steps" in err["exception_message"]
    _ok(comfy, "steps_300")


def test_steps_over_the_widget_range_are_refused_before_running(comfy):
    widgets = dict(CASES["both"][0], steps=257)
    with pytest.raises(PromptRejected) as rejected:
        comfy.queue(_prompt("steps_257", widgets, True, 24))
    errors = rejected.value.body["node_errors"]["4"]["errors"]
    assert any(e["type"] == "value_bigger_than_max" and "257" in e["message"] and "256" in e["message"]
               for e in errors), errors
    _ok(comfy, "steps_257")


@pytest.mark.parametrize("case,node,words", [
    ("zero_steps", "ARsampleMaskedSampling", ["at least 1 step", "steps=0"]),
    ("cfg_interval", "ARsampleSample", ["cfg_interval does not apply to masked sampling"]),
])
def test_bad_values_are_node_errors_and_the_server_keeps_serving(comfy, case, node, words):
    prompt = _prompt(case, CASES["both"][0], True, 25)
    if case == "zero_steps":
        prompt["12"] = {"class_type": "PrimitiveInt", "inputs": {"value": 0}}
        prompt["4"]["inputs"]["steps"] = ["12", 0]
    else:
        prompt["6"]["inputs"]["cfg_interval"] = 3
    err = _error(comfy, prompt)
    assert err["node_type"] == node and err["exception_type"].endswith("SamplingError"), err
    for word in words:
        assert word in err["exception_message"], err["exception_message"]
    _ok(comfy, case)


def test_the_shipped_masked_workflow_matches_the_live_nodes(comfy):
    """Four rows (plain, +Prob., +Masking, both), each its own 'Masked Sampling' with the switches set, the entropy
    temperature (the embedded masked model's preset) on the three entropy rows; cfg 2, top-k 0, one seed."""
    raw = json.loads(WORKFLOW.read_text())
    temperature = next(n for n in raw["nodes"] if n["type"] == "ARsampleEntropyTemperature")
    assert temperature["widgets_values"][0] == "embedded-masked"
    prompt = ui_to_api(raw, comfy.object_info())
    types = [p["class_type"] for p in prompt.values()]
    assert types.count("ARsampleSample") == 4 and types.count("ARsampleMaskedSampling") == 4
    assert not {"ARsampleNextTokenSampling", "ARsampleNextScaleSampling"} & set(types)
    loader = next(p for p in prompt.values() if p["class_type"] == "ARsampleModelLoader")
    vq = next(p for p in prompt.values() if p["class_type"] == "ARsampleVQLoader")
    assert loader["inputs"]["ckpt_name"] == MODEL and vq["inputs"]["vq_name"] == MODEL
    rows = []
    for node in (p for p in prompt.values() if p["class_type"] == "ARsampleSample"):
        inputs = node["inputs"]
        assert (inputs["cfg"], inputs["top_k"], inputs["top_p"], inputs["seed"]) == (2.0, 0, 1.0, 0)
        method = prompt[str(inputs["sampler"][0])]["inputs"]
        rows.append((method["prob"], method["masking"], "entropy_temperature" in inputs))
    assert sorted(rows) == sorted([(False, False, False), (True, False, True), (False, True, True),
                                   (True, True, True)])
    # ComfyUI's converter puts a combo's default in place of a value the node does not offer: the workflow must
    # really run with the embedded masked model's preset.
    converted = next(p for p in prompt.values() if p["class_type"] == "ARsampleEntropyTemperature")
    assert converted["inputs"]["preset"] == "embedded-masked", "the Entropy Temperature node has no preset " \
                                                               "'embedded-masked' (samplers.entropy.PRESETS)"
