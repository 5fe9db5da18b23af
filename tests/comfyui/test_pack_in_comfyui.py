"""The node pack inside a real ComfyUI 0.3.75 server (headless, CPU, 127.0.0.1).

Every shipped workflow is converted from UI to API format against the live
/object_info and executed; bad input, Cancel and a long queue are exercised too.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from comfyui_server import execution_error
from comfyui_workflows import ui_to_api  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "fixtures" / "golden"
WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))
NODE_IDS = ["ARsampleModelLoader", "ARsampleVQLoader", "ARsampleT5Loader", "ARsampleClassCondition",
            "ARsampleTextCondition", "ARsampleJanusTextCondition", "ARsampleEntropyTemperature", "ARsampleNextTokenSampling",
            "ARsampleSpeculativeJacobi", "ARsampleNextScaleSampling", "ARsampleSample", "ARsampleSampler",
            "ARsampleEntropySampler",
            "ARsampleEntropySJDSampler", "ARsampleVQDecode", "ARsampleEntropyMap"]


@pytest.fixture(scope="module")
def object_info(server):
    return server.object_info()


def _small_prompt(tag: str, seed: int, classes: str = "circle, ring", batch_size: int = 1,
                  sampler: str = "ARsampleSampler") -> dict:
    """Embedded model → one sampler → decode → save, with its own seed and prefix (never served from cache)."""
    return {
        "1": {"class_type": "ARsampleModelLoader",
              "inputs": {"ckpt_name": "embedded:tiny", "weight_dtype": "auto", "image_size": "auto"}},
        "2": {"class_type": "ARsampleVQLoader", "inputs": {"vq_name": "embedded:tiny", "weight_dtype": "fp32"}},
        "3": {"class_type": "ARsampleClassCondition",
              "inputs": {"model": ["1", 0], "classes": classes, "batch_size": batch_size}},
        "4": {"class_type": sampler,
              "inputs": {"model": ["1", 0], "conditioning": ["3", 0], "seed": seed, "cfg": 3.0, "top_k": 0,
                         "top_p": 1.0, "temperature": 1.0, "cfg_interval": -1, "vq": ["2", 0], "preview": True}},
        "5": {"class_type": "ARsampleVQDecode", "inputs": {"vq": ["2", 0], "tokens": ["4", 0]}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": f"{tag}/img"}},
    }


def test_nodes_are_registered_with_descriptions_and_tooltips(object_info):
    for node_id in NODE_IDS:
        info = object_info[node_id]
        assert info["category"] == "ARsample"
        assert info["description"], node_id
        assert info["display_name"] and not info["display_name"].startswith("ARsample")
        for group in ("required", "optional"):
            for name, spec in info["input"].get(group, {}).items():
                assert len(spec) > 1 and spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
    loader = object_info["ARsampleModelLoader"]["input"]["required"]["ckpt_name"]
    options = loader[1].get("options", loader[0])
    assert "embedded:tiny" in options and "c2i_L_384.pt" in options


# STAR's and Meissonic's workflows need ComfyUI's own CLIP loader on a full-size CLIP ViT-H/14 text encoder
# (ComfyUI builds CLIP-H at its real width, 0.7 GB), so they are checked against the live node definitions here
# instead of run; their nodes run in test_star_in_comfyui.py and test_meissonic_in_comfyui.py (which also runs the
# Meissonic workflow on a tiny Meissonic folder).
NEEDS_CLIP_H = ("star", "meissonic")
# Janus-Pro's workflow needs a Janus folder (Janus-Pro-1B/): checked here, run on a tiny folder in
# test_janus_in_comfyui.py.
NEEDS_FOLDER = ("janus",)
RUNNABLE = [w for w in WORKFLOWS if not any(k in w.stem for k in NEEDS_CLIP_H + NEEDS_FOLDER)]


@pytest.mark.parametrize("workflow", [w for w in WORKFLOWS if "star" in w.stem], ids=lambda w: w.stem)
def test_star_workflow_matches_the_live_nodes(object_info, workflow):
    prompt = ui_to_api(json.loads(workflow.read_text()), object_info)  # fails on unknown nodes or inputs
    types = [p["class_type"] for p in prompt.values()]
    assert types.count("ARsampleSample") == 5 and types.count("ARsampleNextScaleSampling") == 4
    assert {"CLIPLoader", "ARsampleClipTextCondition", "ARsampleEntropyTemperature"} <= set(types)
    loader = next(p for p in prompt.values() if p["class_type"] == "CLIPLoader")
    assert loader["inputs"]["type"] == "stable_diffusion"
    condition = next(p for p in prompt.values() if p["class_type"] == "ARsampleClipTextCondition")
    assert prompt[str(condition["inputs"]["clip"][0])]["class_type"] == "CLIPLoader"


@pytest.mark.parametrize("workflow", [w for w in WORKFLOWS if "meissonic" in w.stem], ids=lambda w: w.stem)
def test_meissonic_workflow_matches_the_live_nodes(object_info, workflow):
    """Four rows (plain, +Prob., +Masking, both), each its own 'Masked Sampling' (48 steps) with the switches set,
    the Meissonic preset on the three entropy rows; guidance 9, no top-k, one seed; ComfyUI's 'Load CLIP' on
    Meissonic's text encoder → 'Text Condition (CLIP)' with the README's negative prompt; the model at 1024 px."""
    from arsample.models.meissonic_text import MEISSONIC_NEGATIVE_PROMPT

    raw = json.loads(workflow.read_text())
    loaders = {n["type"]: n["widgets_values"] for n in raw["nodes"]}
    # the folder's files (not offered by this server, so the converter would put its defaults in their place)
    assert loaders["ARsampleModelLoader"][0] == "Meissonic/transformer/diffusion_pytorch_model.safetensors"
    assert loaders["ARsampleVQLoader"][0] == "Meissonic/vqvae/diffusion_pytorch_model.safetensors"
    assert loaders["CLIPLoader"][0] == "Meissonic/text_encoder/model.safetensors"
    note = next(n["widgets_values"][0] for n in raw["nodes"] if n["type"] == "MarkdownNote")
    assert "huggingface.co/MeissonFlow/Meissonic" in note and "models/autoregressive/Meissonic/" in note
    assert "models/text_encoders/" in note and "stable_diffusion" in note
    prompt = ui_to_api(raw, object_info)  # fails on unknown nodes or inputs
    types = [p["class_type"] for p in prompt.values()]
    assert types.count("ARsampleSample") == 4 and types.count("ARsampleMaskedSampling") == 4
    assert not {"ARsampleNextTokenSampling", "ARsampleNextScaleSampling", "ARsampleClassCondition"} & set(types)
    by_type = {p["class_type"]: p["inputs"] for p in prompt.values()}
    assert by_type["ARsampleModelLoader"]["image_size"] == "1024"
    assert by_type["CLIPLoader"]["type"] == "stable_diffusion"
    condition = by_type["ARsampleClipTextCondition"]
    assert prompt[str(condition["clip"][0])]["class_type"] == "CLIPLoader"
    assert condition["negative_prompt"] == MEISSONIC_NEGATIVE_PROMPT
    assert by_type["ARsampleEntropyTemperature"]["preset"] == "meissonic"  # offered: not replaced by the default
    rows = []
    for node in (p for p in prompt.values() if p["class_type"] == "ARsampleSample"):
        inputs = node["inputs"]
        assert (inputs["cfg"], inputs["top_k"], inputs["top_p"], inputs["seed"]) == (9.0, 0, 1.0, 0)
        method = prompt[str(inputs["sampler"][0])]["inputs"]
        assert method["steps"] == 48
        rows.append((method["prob"], method["masking"], "entropy_temperature" in inputs))
    assert sorted(rows) == sorted([(False, False, False), (True, False, True), (False, True, True),
                                   (True, True, True)])


@pytest.mark.parametrize("workflow", [w for w in WORKFLOWS if "janus" in w.stem], ids=lambda w: w.stem)
def test_janus_workflow_matches_the_live_nodes(object_info, workflow):
    """Five rows (plain, entropy, SJD exact, SJD entropy, coupled) on one seed with the reference's cfg 5, no top-k;
    both loaders on the downloaded folder 'Janus-Pro-1B/' at auto size (384 px); 'Text Condition (Janus-Pro)' with no
    text encoder; the download command in the note."""
    raw = json.loads(workflow.read_text())
    loaders = {n["type"]: n["widgets_values"] for n in raw["nodes"]}
    # the folder (not offered by this server, so the converter would put its defaults in its place)
    assert loaders["ARsampleModelLoader"][0] == "Janus-Pro-1B/" and loaders["ARsampleVQLoader"][0] == "Janus-Pro-1B/"
    assert loaders["ARsampleModelLoader"][2] == "auto"
    note = next(n["widgets_values"][0] for n in raw["nodes"] if n["type"] == "MarkdownNote")
    assert "huggingface-cli download deepseek-ai/Janus-Pro-1B --local-dir ComfyUI/models/autoregressive/Janus-Pro-1B" \
        in note and "models/Janus-Pro/" in note
    prompt = ui_to_api(raw, object_info)  # fails on unknown nodes or inputs
    types = [p["class_type"] for p in prompt.values()]
    assert types.count("ARsampleSample") == 5 and types.count("ARsampleSpeculativeJacobi") == 3
    assert {"ARsampleJanusTextCondition", "ARsampleNextTokenSampling", "ARsampleEntropyTemperature"} <= set(types)
    assert not {"ARsampleT5Loader", "CLIPLoader", "ARsampleTextCondition", "ARsampleClassCondition"} & set(types)
    condition = next(p["inputs"] for p in prompt.values() if p["class_type"] == "ARsampleJanusTextCondition")
    assert prompt[str(condition["model"][0])]["class_type"] == "ARsampleModelLoader"
    rows = []
    for node in (p for p in prompt.values() if p["class_type"] == "ARsampleSample"):
        inputs = node["inputs"]
        assert (inputs["cfg"], inputs["top_k"], inputs["top_p"], inputs["temperature"], inputs["seed"]) == \
            (5.0, 0, 1.0, 1.0, 0)
        method = prompt[str(inputs["sampler"][0])]
        options = method["inputs"]
        rows.append((method["class_type"], options.get("acceptance"), options.get("coupled"),
                     "entropy_temperature" in inputs))
    assert sorted(rows, key=str) == sorted([
        ("ARsampleNextTokenSampling", None, None, False), ("ARsampleNextTokenSampling", None, None, True),
        ("ARsampleSpeculativeJacobi", "exact (lossless)", False, False),
        ("ARsampleSpeculativeJacobi", "entropy (lossy, paper rule)", False, False),
        ("ARsampleSpeculativeJacobi", "exact (lossless)", True, False)], key=str)


@pytest.mark.parametrize("workflow", RUNNABLE, ids=[w.stem for w in RUNNABLE])
def test_shipped_workflow_runs(server, object_info, workflow):
    prompt = ui_to_api(json.loads(workflow.read_text()), object_info)
    entry = server.run(prompt, timeout=600)
    images = server.node_images(entry)
    decode_sources = {nid: p for nid, p in prompt.items() if p["class_type"] in ("SaveImage", "PreviewImage")}
    assert set(decode_sources) <= set(images)
    types = [p["class_type"] for p in prompt.values()]
    rows = 4 if "masked" in workflow.stem else 5
    assert types.count("ARsampleSample") == rows and not {"ARsampleSampler", "ARsampleEntropySJDSampler"} & set(types)
    if "masked" in workflow.stem:  # masked: every row its own 'Masked Sampling' (plain, +Prob., +Masking, both)
        assert types.count("ARsampleMaskedSampling") == 4 and "ARsampleEntropyTemperature" in types
    elif "var" in workflow.stem:  # next-scale: the shared method node and the rows' own scale-wise ones
        assert types.count("ARsampleNextScaleSampling") == 4 and "ARsampleEntropyTemperature" in types
    else:
        assert {"ARsampleNextTokenSampling", "ARsampleSpeculativeJacobi", "ARsampleEntropyTemperature"} <= set(types)
    # the embedded models' 32x32 pictures are enlarged 8x (nearest neighbour) so a person can see them
    size = 32 * 8 if "embedded" in workflow.stem else (256 if "t2i" in workflow.stem or "var" in workflow.stem
                                                       else 384)
    conds = [p for p in prompt.values() if p["class_type"] in ("ARsampleClassCondition", "ARsampleTextCondition")]
    count = len(conds[0]["inputs"]["classes"].split(",")) if "classes" in conds[0]["inputs"] else 1
    # next-scale entropy maps show one map per scale side by side: 7 (the embedded tiny-var) or 10 (VAR at 256 px)
    scales = (7 if "embedded" in workflow.stem else 10) if "var" in workflow.stem else 1
    for node_id in decode_sources:
        assert len(images[node_id]) == count
        is_map = prompt[node_id]["class_type"] == "PreviewImage"  # the rows preview their entropy maps
        width = size * scales if is_map else size
        assert all(img.shape == (size, width, 3) for img in images[node_id]), (node_id, images[node_id][0].shape)
    stats = [o for o in entry["outputs"].values() if "text" in o]
    assert any("forward passes" in str(o["text"]) for o in stats)


@pytest.mark.parametrize("sampler", ["ARsampleEntropySampler", "ARsampleEntropySJDSampler"])
def test_same_seed_same_image_and_seed_matters(server, sampler):
    extra = {"preset": "llamagen", "t0": 2.5, "alpha": 3.0, "theta": 0.6, "clamp_min": 0.0, "clamp_max": 0.0,
             "entropy_source": "filtered"}
    if sampler == "ARsampleEntropySJDSampler":
        extra.update(acceptance="exact (lossless)", window=16, init="repeat", coupled=True)
    runs = []
    for tag, seed in (("a", 11), ("b", 11), ("c", 12)):
        prompt = _small_prompt(f"seed_{sampler}_{tag}", seed, classes="triangle, dots, plus", sampler=sampler)
        prompt["4"]["inputs"].update(extra)
        runs.append(server.node_images(server.run(prompt))["6"])
    assert len(runs[0]) == 3
    assert all(np.array_equal(x, y) for x, y in zip(runs[0], runs[1]))
    assert not all(np.array_equal(x, y) for x, y in zip(runs[0], runs[2]))


def test_vq_file_in_model_loader_fails_with_our_message_and_server_keeps_serving(server):
    prompt = {
        "1": {"class_type": "ARsampleModelLoader",
              "inputs": {"ckpt_name": "vq_in_wrong_folder.pt", "weight_dtype": "auto", "image_size": "auto"}},
        "2": {"class_type": "ARsampleClassCondition", "inputs": {"model": ["1", 0], "classes": "1", "batch_size": 1}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
    }
    entry = server.run(prompt, check=False)
    err = execution_error(entry)
    assert err is not None and err["node_type"] == "ARsampleModelLoader"
    assert "VQ tokenizer, not a GPT" in err["exception_message"]
    assert "Load it with the VQ loader" in err["exception_message"]
    # the server is fine and the next prompt works
    assert server.get("/system_stats")["system"]
    server.run(_small_prompt("after_error", seed=77))


def test_out_of_range_class_is_a_node_error(server):
    prompt = {
        "1": {"class_type": "ARsampleModelLoader",
              "inputs": {"ckpt_name": "embedded:tiny", "weight_dtype": "auto", "image_size": "auto"}},
        "2": {"class_type": "ARsampleClassCondition", "inputs": {"model": ["1", 0], "classes": "3, 12",
                                                                 "batch_size": 1}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
    }
    err = execution_error(server.run(prompt, check=False))
    assert err and "out of range" in err["exception_message"] and "0..9" in err["exception_message"]


def test_cancel_stops_within_a_step_and_next_run_works(server):
    # 512 images: many seconds of sampling on any CPU, so Cancel lands inside the token loop.
    prompt_id = server.queue(_small_prompt("long", seed=1234, classes=", ".join(["circle, ring, square, dots"] * 4),
                                           batch_size=32))
    deadline = time.monotonic() + 60
    while not server.get("/queue")["queue_running"] and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)  # inside the sampling loop
    asked = time.monotonic()
    server.interrupt()
    entry = server.wait(prompt_id, timeout=120)
    stopped_after = time.monotonic() - asked
    status = entry["status"]
    assert status["status_str"] == "error"
    assert any(m[0] == "execution_interrupted" for m in status["messages"])
    # The loop checks Cancel every step (a step here is well under a second); allow for a slow CI machine.
    assert stopped_after < 10.0, f"took {stopped_after:.1f} s to stop"
    assert "6" not in (entry.get("outputs") or {})  # nothing was saved: it stopped before decoding
    server.run(_small_prompt("after_cancel", seed=78))


def test_twenty_queued_prompts_complete_and_memory_stays_flat(server):
    ids = []
    rss = []
    for i in range(20):
        ids.append(server.queue(_small_prompt(f"queue{i}", seed=1000 + i)))
    for i, pid in enumerate(ids):
        entry = server.wait(pid, timeout=600)
        assert entry["status"]["status_str"] == "success", execution_error(entry)
        if i in (4, 19):
            rss.append(server.rss_mb())
    assert rss[1] - rss[0] < 64, f"server memory grew from {rss[0]:.0f} to {rss[1]:.0f} MiB over 15 prompts"


def test_failed_load_leaves_nothing_cached(server):
    """A failed loader is re-executed (not served from cache) once the file is fixed."""
    models = server.models_path / "autoregressive"
    bad = models / "later_fixed.pt"
    bad.write_bytes(b"not a checkpoint")
    prompt = {
        "1": {"class_type": "ARsampleModelLoader",
              "inputs": {"ckpt_name": "later_fixed.pt", "weight_dtype": "auto", "image_size": "auto"}},
        "2": {"class_type": "ARsampleClassCondition", "inputs": {"model": ["1", 0], "classes": "1", "batch_size": 1}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
    }
    err = execution_error(server.run(prompt, check=False))
    assert err and "truncated or corrupted" in err["exception_message"]
    bad.write_bytes((models / "c2i_L_384.pt").read_bytes())
    server.run(prompt)  # now loads: nothing half-loaded was cached
    bad.unlink()



def test_imagenet_class_names_work_for_official_c2i_models(server):
    prompt = {
        "1": {"class_type": "ARsampleModelLoader",
              "inputs": {"ckpt_name": "c2i_L_384.pt", "weight_dtype": "auto", "image_size": "auto"}},
        "2": {"class_type": "ARsampleClassCondition",
              "inputs": {"model": ["1", 0], "classes": "golden retriever, 360", "batch_size": 2}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
    }
    server.run(prompt)
    prompt["2"]["inputs"]["classes"] = "golden retrievr"
    err = execution_error(server.run(prompt, check=False))
    assert err and "Unknown class 'golden retrievr'" in err["exception_message"]


def _t2i_prompt(t5: str = "flan-t5-xl/", text: str = "a red fox", seed: int = 0, model: str = "t2i_XL_stage1_256.pt",
                condition: str = "text") -> dict:
    prompt = {
        "1": {"class_type": "ARsampleModelLoader",
              "inputs": {"ckpt_name": model, "weight_dtype": "auto", "image_size": "64"}},
        "2": {"class_type": "ARsampleT5Loader", "inputs": {"t5_name": t5, "weight_dtype": "auto"}},
        "3": {"class_type": "ARsampleTextCondition",
              "inputs": {"model": ["1", 0], "text_encoder": ["2", 0], "prompt": text, "batch_size": 2,
                         "clean_prompt": True}},
        "4": {"class_type": "ARsampleSampler",
              "inputs": {"model": ["1", 0], "conditioning": ["3", 0], "seed": seed, "cfg": 7.5, "top_k": 0,
                         "top_p": 1.0, "temperature": 1.0, "cfg_interval": -1}},
        "5": {"class_type": "PreviewAny", "inputs": {"source": ["4", 1]}},
    }
    if condition == "class":
        prompt["3"] = {"class_type": "ARsampleClassCondition",
                       "inputs": {"model": ["1", 0], "classes": "1", "batch_size": 1}}
    return prompt


def test_t5_folder_is_listed_once_and_prompts_sample(server, object_info):
    spec = server.object_info()["ARsampleT5Loader"]["input"]["required"]["t5_name"]
    options = spec[1].get("options", spec[0])
    assert "flan-t5-xl/" in options and not any(o.startswith("flan-t5-xl/model") for o in options)
    entry = server.run(_t2i_prompt(seed=5))
    assert any("forward passes" in str(o.get("text")) for o in entry["outputs"].values())


@pytest.mark.parametrize("case,node,match", [
    ("text_for_c2i", "ARsampleTextCondition", "class-to-image model; use 'Class Condition'"),
    ("class_for_t2i", "ARsampleClassCondition", "text-to-image model"),
    ("wrong_width", "ARsampleTextCondition", "32-wide features but t2i_XL_stage1_256.pt reads 16-wide"),
    ("not_t5", "ARsampleT5Loader", "holds no T5 encoder"),
    ("empty_prompt", "ARsampleTextCondition", "prompt is empty"),
])
def test_t2i_bad_input_is_a_node_error_and_server_keeps_serving(server, case, node, match):
    if case == "wrong_width":
        from safetensors.torch import save_file

        from arsample.models.t5 import T5Config, T5Encoder

        wide = T5Encoder(T5Config(d_model=32, d_kv=8, num_heads=4, d_ff=48, num_layers=1))
        save_file({k: v.contiguous() for k, v in wide.state_dict().items()},
                  server.models_path / "text_encoders" / "t5_width32.safetensors")
    if case == "not_t5":
        (server.models_path / "text_encoders" / "not_a_t5.safetensors").write_bytes(
            (GOLDEN / "gpt_t2i.safetensors").read_bytes())
    prompt = {"text_for_c2i": lambda: _t2i_prompt(model="c2i_L_384.pt"),
              "class_for_t2i": lambda: _t2i_prompt(condition="class"),
              "wrong_width": lambda: _t2i_prompt(t5="t5_width32.safetensors"),
              "not_t5": lambda: _t2i_prompt(t5="not_a_t5.safetensors"),
              "empty_prompt": lambda: _t2i_prompt(text="   ")}[case]()
    err = execution_error(server.run(prompt, check=False))
    assert err and err["node_type"] == node and match in err["exception_message"], err
    assert server.get("/system_stats")["system"]
