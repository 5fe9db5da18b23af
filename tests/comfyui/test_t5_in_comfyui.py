"""Our T5 loader on ComfyUI's own T5 module, in-process in the ComfyUI venv, against the golden data.

The server tests show the nodes run; this one checks the numbers: the T5 Loader + Text Condition
code path (ComfyUI's T5, comfy ops, memory manager, offload) gives LlamaGen's left-aligned caption
features within 1e-4.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"

SCRIPT = r"""
import json, sys, torch
tree, link_dir, golden, out = sys.argv[1:5]
sys.path[:0] = [tree, link_dir]
from comfy.cli_args import args
args.cpu = True
import folder_paths
folder_paths.add_model_folder_path("text_encoders", golden)
import comfy.model_management as mm
from arsample_pack.models.registry import CLASS, PROMPT, ModelInfo, PromptSpec, family
from arsample_pack.nodes import text
from arsample_pack.nodes.payloads import ARModelHandle
prompts = json.loads(sys.argv[5])
assert "t5_tiny/" in text.text_encoder_choices(), text.text_encoder_choices()
handle = text.T5Loader.execute("t5_tiny/", "fp32").result[0]
seen_loaded = []
real_unload = text.unload
def recording_unload(patcher):
    seen_loaded.append(any(m.model is patcher for m in mm.current_loaded_models))
    real_unload(patcher)
text.unload = recording_unload
features, mask = text.encode_prompts(handle, prompts, 120, True)
still_loaded = any(m.model is handle.patcher for m in mm.current_loaded_models)
def handle_of(name, kind, width=0):  # a model's handle as the loader makes it, without weights
    spec = PromptSpec(120, width, "FLAN-T5-XL (2048)") if kind == PROMPT else None
    info = ModelInfo("llamagen", name, kind, 16384, ((16, 16),), num_classes=1000 if kind == CLASS else 0, prompt=spec)
    return ARModelHandle(None, family("llamagen"), info)
model = handle_of("t2i_XL_stage1_256.pt", PROMPT, 16)
cond = text.TextCondition.execute(model, handle, prompts[1], 3, True).result[0]
errors = []
for bad in (handle_of("c2i_L_384.pt", CLASS), handle_of("t2i_B.pt", PROMPT, 2048)):
    try:
        text.TextCondition.execute(bad, handle, "a cat", 1, True)
    except Exception as exc:
        errors.append(str(exc))
torch.save({"features": features, "mask": mask, "cond_caption": cond.value.caption,
            "cond_mask": cond.value.caption_mask, "cond_kind": cond.kind, "cond_names": list(cond.names),
            "still_loaded": still_loaded, "loaded_while_encoding": seen_loaded[0], "errors": errors}, out)
"""


def test_comfy_t5_path_matches_reference(run_pack_script, tmp_path):
    io = load_file(GOLDEN / "t5_io.safetensors")
    from safetensors import safe_open

    prompts = json.loads(safe_open(str(GOLDEN / "t5_io.safetensors"), "pt").metadata()["prompts"])
    out = tmp_path / "out.pt"
    proc = run_pack_script(SCRIPT, tmp_path, GOLDEN, out, json.dumps(prompts))
    got = torch.load(out, weights_only=True)
    torch.testing.assert_close(got["features"], io["left_padded"], atol=1e-4, rtol=0)
    assert torch.equal(got["mask"], io["left_padded_mask"])
    assert got["loaded_while_encoding"] and not got["still_loaded"]  # the memory manager held it, then let go
    assert got["cond_caption"].shape == (3, 120, 16) and got["cond_kind"] == "prompt"
    assert got["cond_names"] == [prompts[1]] * 3
    torch.testing.assert_close(got["cond_caption"][2], io["left_padded"][1], atol=1e-4, rtol=0)
    assert "class-to-image" in got["errors"][0] and "2048" in got["errors"][1]
    assert "longer than 120 T5 tokens" in proc.stderr
