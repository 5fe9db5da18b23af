"""The sampler nodes and the CLI give the same tokens for the same settings (in the ComfyUI venv, in-process).

Issue 10, kind 1: the nodes used to put their `entropy_source` widget over every preset, so a preset
defined on the raw entropy (`embedded`) sampled another distribution in ComfyUI than on the command
line. The settings are those of the shipped embedded workflow.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SCRIPT = r"""
import json, sys, numpy as np
tree, link_dir, out_dir = sys.argv[1:4]
sys.path[:0] = [tree, link_dir]
from comfy.cli_args import args
args.cpu = True
from arsample_pack.cli import main
from arsample_pack.nodes.conditioning import ClassCondition
from arsample_pack.nodes.loaders import ModelLoader
from arsample_pack.nodes.sampling import EntropySampler, EntropySJDSampler

model = ModelLoader.execute("embedded:tiny", "fp32", "auto").result[0]
cond = ClassCondition.execute(model, "circle", 1).result[0]
common = dict(model=model, conditioning=cond, seed=0, cfg=2.0, top_k=16, top_p=1.0, temperature=1.0, cfg_interval=-1)
widgets = dict(preset="embedded", t0=2.5, alpha=3.0, theta=0.6, clamp_min=0.0, clamp_max=0.0,
               entropy_source="filtered")  # the workflow's widget values: the source must not apply to a preset
results = {}
results["node_entropy"] = EntropySampler.execute(**common, **widgets).result[0].tokens.tolist()
results["node_sjd"] = EntropySJDSampler.execute(**common, acceptance="exact (lossless)", window=16, init="repeat",
                                                coupled=True, **widgets).result[0].tokens.tolist()
cli = ["generate", "--model", "tiny", "--preset", "embedded", "--top-k", "16", "--cfg", "2", "--classes", "0",
       "--seed", "0", "--device", "cpu"]
for name, extra in (("cli_entropy", ["--sampler", "entropy"]),
                    ("cli_sjd", ["--sampler", "sjd", "--coupled", "--entropy-temperature"])):
    assert main(cli + extra + ["--out", f"{out_dir}/{name}.png", "--save-tokens", f"{out_dir}/{name}.npy"]) == 0
    results[name] = np.load(f"{out_dir}/{name}.npy").tolist()
json.dump(results, open(f"{out_dir}/tokens.json", "w"))
"""


def test_entropy_nodes_give_the_cli_tokens_for_a_raw_entropy_preset(run_pack_script, tmp_path):
    run_pack_script(SCRIPT, tmp_path, tmp_path)
    got = json.loads((tmp_path / "tokens.json").read_text())
    assert len(got["node_entropy"][0]) == 256
    assert got["node_entropy"] == got["cli_entropy"]
    assert got["node_sjd"] == got["cli_sjd"]
