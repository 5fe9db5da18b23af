"""Samplers as values (issue 11): 'AR Sample' with each option node gives the same tokens as today's sampler nodes
(which are presets over it), an unconnected temperature is plain sampling, and what cannot work (a sampler of
another decoding order, a condition that does not fit) is refused before the model is loaded.

In-process in the ComfyUI venv (the nodes' execute methods on the embedded model); the server tests run the same
nodes from workflows.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SCRIPT = r"""
import json, sys, torch
tree, link_dir, out = sys.argv[1:4]
sys.path[:0] = [tree, link_dir]
from comfy.cli_args import args
args.cpu = True
import comfy.model_management as mm
from arsample_pack.models.llamagen import LlamaGenCondition
from arsample_pack.models.registry import Condition
from arsample_pack.nodes.conditioning import ClassCondition
from arsample_pack.nodes.loaders import ModelLoader, VQLoader
from arsample_pack.nodes.sampler_options import NextTokenSampling, SpeculativeJacobiDecoding
from arsample_pack.nodes.sampling import ARSample, EntropySampler, EntropySJDSampler, PlainSampler
from arsample_pack.nodes.temperature import EntropyTemperatureNode

def first(out):
    return out.result[0]

model = first(ModelLoader.execute("embedded:tiny", "fp32", "auto"))
vq = first(VQLoader.execute("embedded:tiny", "fp32"))
cond = first(ClassCondition.execute(model, "circle, ring", 1))
shared = dict(model=model, conditioning=cond, seed=3, cfg=2.0, top_k=16, top_p=1.0, temperature=1.0, cfg_interval=-1)
results, errors = {}, {}

def loaded():
    return any(m.model is model.patcher for m in mm.current_loaded_models)

class MaskedOrder:  # a sampler value of another decoding order
    order = "masked"
    def label(self, entropy):
        return "maskgit"
    def run(self, *a, **k):
        raise AssertionError("must not run")

bad_cond = Condition("llamagen", "class", LlamaGenCondition(labels=torch.tensor([12])), ("x",))
for name, call in {"order": lambda: ARSample.execute(sampler=MaskedOrder(), **shared),
                   "condition": lambda: ARSample.execute(sampler=first(NextTokenSampling.execute()),
                                                         **{**shared, "conditioning": bad_cond})}.items():
    try:
        call()
        errors[name] = None
    except Exception as exc:
        errors[name] = [type(exc).__name__, str(exc), loaded()]

def run(node, **kw):
    tokens, stats = node.execute(**shared, **kw).result
    return {"tokens": tokens.tokens.tolist(), "stats": stats, "layout": list(map(list, tokens.layout.scales)),
            "temperature": tokens.temperature.shape == tokens.tokens.shape}

widgets = dict(preset="embedded", t0=2.5, alpha=3.0, theta=0.6, clamp_min=0.0, clamp_max=0.0, entropy_source="filtered")
custom = dict(widgets, preset="custom", t0=1.5, alpha=1.2, clamp_min=0.7, entropy_source="raw")
sjd = dict(acceptance="entropy (lossy, paper rule)", window=8, init="repeat", coupled=True)
next_token = first(NextTokenSampling.execute())
results["plain_old"] = run(PlainSampler, vq=vq, preview=True)
results["plain_new"] = run(ARSample, sampler=next_token, vq=vq, preview=True)
results["entropy_old"] = run(EntropySampler, **widgets)
results["entropy_new"] = run(ARSample, sampler=next_token,
                             entropy_temperature=first(EntropyTemperatureNode.execute(**widgets)))
results["sjd_old"] = run(EntropySJDSampler, **sjd, **custom)
results["sjd_new"] = run(ARSample, sampler=first(SpeculativeJacobiDecoding.execute(**sjd)),
                         entropy_temperature=first(EntropyTemperatureNode.execute(**custom)))
results["exact_old"] = run(EntropySJDSampler, acceptance="exact (lossless)", window=16, init="random", coupled=False,
                           **dict(widgets, preset="off"))
results["exact_new"] = run(ARSample, sampler=first(SpeculativeJacobiDecoding.execute("exact (lossless)", 16, "random",
                                                                                        False)))
json.dump({"results": results, "errors": errors}, open(out, "w"))
"""


@pytest.fixture(scope="module")
def outcome(tmp_path_factory, run_pack_script):
    work = tmp_path_factory.mktemp("sampler_values")
    out = work / "out.json"
    run_pack_script(SCRIPT, work, out)
    return json.loads(out.read_text())


@pytest.mark.parametrize("pair", ["plain", "entropy", "sjd", "exact"])
def test_runner_with_option_nodes_gives_the_old_nodes_tokens(outcome, pair):
    old, new = outcome["results"][f"{pair}_old"], outcome["results"][f"{pair}_new"]
    assert len(new["tokens"]) == 2 and len(new["tokens"][0]) == 256
    assert new["tokens"] == old["tokens"]
    assert new["stats"].split(":")[0] == old["stats"].split(":")[0]
    assert new["layout"] == [[16, 16]] and new["temperature"]


def test_labels_name_the_method_and_the_temperature(outcome):
    labels = {k: v["stats"].split(":")[0] for k, v in outcome["results"].items()}
    assert labels["plain_new"] == "plain" and labels["entropy_new"] == "entropy"
    assert labels["sjd_new"] == "coupled-entropy" and labels["exact_new"] == "sjd"
    assert outcome["results"]["plain_new"]["tokens"] != outcome["results"]["entropy_new"]["tokens"]


def test_sampler_of_another_order_is_refused_before_loading(outcome):
    kind, message, was_loaded = outcome["errors"]["order"]
    assert kind == "SamplingError" and not was_loaded
    assert "'maskgit' decodes masked" in message and "decodes next-token" in message
    assert "connect a next-token sampler" in message


def test_condition_that_does_not_fit_is_refused_before_loading(outcome):
    kind, message, was_loaded = outcome["errors"]["condition"]
    assert kind == "SamplingError" and not was_loaded
    assert "Class id out of range: 12" in message and "0..9" in message
