"""Issue 10 in a real ComfyUI: loaders given no file (None, '') or a file that is not there, and the
Entropy Map over IMAGE batches other nodes make (RGBA from "Join Image with Alpha", other sizes, one image
for many maps)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from comfyui_server import execution_error  # noqa: E402

LLAMAGEN = "huggingface.co/FoundationVision/LlamaGen"


def _loader_prompt(node: str, name_input: str, value) -> dict:
    """A loader whose file input is ``value``, feeding a node that needs its output."""
    if node == "ARsampleT5Loader":
        return {"1": {"class_type": node, "inputs": {name_input: value, "weight_dtype": "auto"}},
                "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    inputs = {name_input: value, "weight_dtype": "fp32"}
    if node == "ARsampleModelLoader":
        inputs["image_size"] = "auto"
    return {"1": {"class_type": node, "inputs": inputs}, "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}


@pytest.mark.parametrize("node,name_input,folder,url", [
    ("ARsampleModelLoader", "ckpt_name", "models/autoregressive/", LLAMAGEN),
    ("ARsampleVQLoader", "vq_name", "models/vq/", LLAMAGEN),
    ("ARsampleT5Loader", "t5_name", "models/text_encoders/", "huggingface.co/google/flan-t5-xl"),
])
@pytest.mark.parametrize("value", [None, "", "not_downloaded_yet.pt", "not_downloaded_yet/"])
def test_loader_without_its_file_says_what_where_and_from_where(comfy, node, name_input, folder, url, value):
    err = execution_error(comfy.run(_loader_prompt(node, name_input, value), check=False))
    assert err is not None and err["node_type"] == node, err
    message = err["exception_message"]
    assert folder in message and url in message and name_input in message, message
    assert "NoneType" not in message and "startswith" not in message
    if value:
        assert f"'{value}'" in message


def _entropy_map_prompt(tag: str, *, image_batch: int = 0) -> dict:
    """Embedded model, two classes → decode → resized to 50x37, joined with an alpha mask (RGBA, batch 1) →
    Entropy Map over it. With ``image_batch`` the decoded images are repeated that many times instead."""
    prompt = {
        "1": {"class_type": "ARsampleModelLoader",
              "inputs": {"ckpt_name": "embedded:tiny", "weight_dtype": "fp32", "image_size": "auto"}},
        "2": {"class_type": "ARsampleVQLoader", "inputs": {"vq_name": "embedded:tiny", "weight_dtype": "fp32"}},
        "3": {"class_type": "ARsampleClassCondition", "inputs": {"model": ["1", 0], "classes": "circle, ring",
                                                                 "batch_size": 1}},
        "4": {"class_type": "ARsampleSampler",
              "inputs": {"model": ["1", 0], "conditioning": ["3", 0], "seed": 5, "cfg": 2.0, "top_k": 0,
                         "top_p": 1.0, "temperature": 1.0, "cfg_interval": -1}},
        "5": {"class_type": "ARsampleVQDecode", "inputs": {"vq": ["2", 0], "tokens": ["4", 0]}},
        "6": {"class_type": "ImageScale", "inputs": {"image": ["5", 0], "upscale_method": "nearest-exact",
                                                     "width": 50, "height": 37, "crop": "disabled"}},
        "7": {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 50, "height": 37}},
        "8": {"class_type": "JoinImageWithAlpha", "inputs": {"image": ["6", 0], "alpha": ["7", 0]}},
        "9": {"class_type": "ARsampleEntropyMap",
              "inputs": {"tokens": ["4", 0], "image": ["8", 0], "overlay": 0.5, "max_entropy": 0.0}},
        "10": {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": f"{tag}/map"}},
    }
    if image_batch:
        prompt["8"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["5", 0], "amount": image_batch}}
    return prompt


def test_entropy_map_over_one_rgba_image_of_another_size(comfy):
    entry = comfy.run(_entropy_map_prompt("rgba_map"))
    saved = entry["outputs"]["10"]["images"]
    assert len(saved) == 2  # one map per sample, the single image under both
    arrays = [np.asarray(Image.open(comfy.base / s["type"] / s.get("subfolder", "") / s["filename"]).convert("RGB"))
              for s in saved]
    assert all(a.shape == (37, 50, 3) for a in arrays)
    assert not np.array_equal(arrays[0], arrays[1])


def test_entropy_map_with_unmatched_image_batch_is_a_node_error(comfy):
    err = execution_error(comfy.run(_entropy_map_prompt("unmatched_map", image_batch=3), check=False))
    assert err and err["node_type"] == "ARsampleEntropyMap", err
    assert "6 images" in err["exception_message"] and "2 entropy maps" in err["exception_message"]
    assert comfy.get("/system_stats")["system"]
