"""Saved workflows keep working (issue 11): the three example workflows as shipped before samplers became values
(tests/fixtures/workflows_v1/, with today's sampler node ids 'ARsampleSampler', 'ARsampleEntropySampler',
'ARsampleEntropySJDSampler') still load in a real ComfyUI and give, pixel for pixel, the images of the same graph
built the new way: the option nodes ('Next-Token Sampling', 'Speculative Jacobi Decoding', 'Entropy Temperature')
feeding 'AR Sample'.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from comfyui_workflows import ui_to_api  # noqa: E402

V1 = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "workflows_v1").glob("*.json"))
OLD_SAMPLERS = ("ARsampleSampler", "ARsampleEntropySampler", "ARsampleEntropySJDSampler")
SHARED = ("model", "conditioning", "seed", "cfg", "top_k", "top_p", "temperature", "cfg_interval", "vq", "preview")
SJD_WIDGETS = ("acceptance", "window", "init", "coupled")
ENTROPY_WIDGETS = ("preset", "t0", "alpha", "theta", "clamp_min", "clamp_max", "entropy_source")


def as_new_composition(prompt: dict) -> dict:
    """The same API prompt with every old sampler node replaced by option nodes → 'AR Sample' (same node id, so
    everything downstream keeps its links)."""
    new = dict(prompt)
    for number, (node_id, node) in enumerate(prompt.items()):
        kind, inputs = node["class_type"], node["inputs"]
        if kind not in OLD_SAMPLERS:
            continue
        method, temperature = str(9000 + 2 * number), str(9001 + 2 * number)
        runner = {k: inputs[k] for k in SHARED if k in inputs} | {"sampler": [method, 0]}
        if kind == "ARsampleEntropySJDSampler":
            new[method] = {"class_type": "ARsampleSpeculativeJacobi", "inputs": {k: inputs[k] for k in SJD_WIDGETS}}
        else:
            new[method] = {"class_type": "ARsampleNextTokenSampling", "inputs": {}}
        if kind != "ARsampleSampler" and inputs["preset"] != "off":
            new[temperature] = {"class_type": "ARsampleEntropyTemperature",
                                "inputs": {k: inputs[k] for k in ENTROPY_WIDGETS}}
            runner["entropy_temperature"] = [temperature, 0]
        new[node_id] = {"class_type": "ARsampleSample", "inputs": runner}
    return new


@pytest.mark.parametrize("workflow", V1, ids=[w.stem for w in V1])
def test_v1_workflow_loads_and_gives_the_new_composition_images(server, workflow):
    old = ui_to_api(json.loads(workflow.read_text()), server.object_info())
    samplers = [p["class_type"] for p in old.values() if p["class_type"] in OLD_SAMPLERS]
    assert len(samplers) == 5 and set(samplers) == set(OLD_SAMPLERS)
    old_images = server.node_images(server.run(old, timeout=600))
    new_images = server.node_images(server.run(as_new_composition(old), timeout=600))
    shown = [nid for nid, p in old.items() if p["class_type"] in ("SaveImage", "PreviewImage")]
    assert len(shown) == 10  # each sampler row: its images and its entropy map
    for node_id in shown:
        assert len(old_images[node_id]) == len(new_images[node_id]) >= 1
        for a, b in zip(old_images[node_id], new_images[node_id]):
            assert np.array_equal(a, b), (workflow.stem, old[node_id]["class_type"], node_id)
