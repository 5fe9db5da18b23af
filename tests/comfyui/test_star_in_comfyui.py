"""STAR in ComfyUI (issue 12): the model loader loads a STAR training snapshot from the models folder through the
registry, 'Text Condition (CLIP)' encodes a prompt with ComfyUI's own SD2 CLIP (loaded by ComfyUI's CLIP loader),
and 'AR Sample' with 'Next-Scale Sampling' and VAR's VQ-VAE gives exactly the tokens of the library on the same
files, seed and text encoder folder (models.clip_text); what cannot work is refused with our message.

The STAR is the golden tiny one (text width 48) saved as a released-style snapshot; the CLIP is a tiny random
SD-2.1 text encoder of width 48 in the Hugging Face layout (23 blocks, ComfyUI's CLIP BPE vocabulary, pad "!"),
built as in test_clip_text_in_comfyui.py. In-process in the ComfyUI venv (the nodes' execute methods).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"
PROMPT = "a red fox in the snow"

SCRIPT = r"""
import json, shutil, sys
from pathlib import Path
import torch
tree, work = sys.argv[1], Path(sys.argv[2])
sys.path[:0] = [tree, str(work)]
torch.set_num_threads(1)
from comfy.cli_args import args
args.cpu = True
import comfy.sd
import folder_paths
import transformers
from safetensors.torch import save_file
from arsample_pack.models.clip_text import encode_sd21_prompts
from arsample_pack.nodes.conditioning import ClassCondition
from arsample_pack.nodes.loaders import ModelLoader, VQLoader
from arsample_pack.nodes.sampler_options import NextScaleSampling
from arsample_pack.nodes.sampling import ARSample
from arsample_pack.nodes.text import ClipTextCondition
from arsample_pack.samplers import SamplerSettings
from arsample_pack.samplers.next_scale import sample_next_scale

models = work / "models"
folder_paths.add_model_folder_path("autoregressive", str(models / "autoregressive"))
folder_paths.add_model_folder_path("vq", str(models / "vq"))
W = 48
root = work / "stable-diffusion-2-1"
tok = root / "tokenizer"
tok.mkdir(parents=True)
for name in ("vocab.json", "merges.txt"):
    shutil.copy(Path(tree) / "comfy" / "sd1_tokenizer" / name, tok / name)
special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
           "pad_token": "!"}
(tok / "special_tokens_map.json").write_text(json.dumps(special))
(tok / "tokenizer_config.json").write_text(json.dumps(dict(special, tokenizer_class="CLIPTokenizer",
                                                           model_max_length=77, do_lower_case=True)))

def text_encoder(width, folder):
    config = transformers.CLIPTextConfig(vocab_size=49408, hidden_size=width, intermediate_size=2 * width,
                                         num_hidden_layers=23, num_attention_heads=2, max_position_embeddings=77,
                                         hidden_act="gelu", projection_dim=width, bos_token_id=0, eos_token_id=2,
                                         pad_token_id=1)
    torch.manual_seed(width)
    model = transformers.CLIPTextModel(config).eval()
    model.save_pretrained(folder)
    sd = {("" if k.startswith("text_model.") else "text_model.") + k: v.contiguous()
          for k, v in model.state_dict().items()}
    save_file(dict(sd, **{"text_model.embeddings.position_ids": torch.arange(77)[None]}),
              str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder / "model.safetensors"

def comfy_clip(path, width):
    small = {"hidden_size": width, "intermediate_size": 2 * width, "num_attention_heads": 2}
    return comfy.sd.load_clip([str(path)], clip_type=comfy.sd.CLIPType.STABLE_DIFFUSION,
                              model_options={"clip_h_model_config": small, "dtype": torch.float32})

clip = comfy_clip(text_encoder(W, root / "text_encoder"), W)
narrow = comfy_clip(text_encoder(32, work / "narrow"), 32)

def first(out):
    return out.result[0]

model = first(ModelLoader.execute("star-tiny.pth", "fp32", "auto"))
vq = first(VQLoader.execute("vae_tiny.safetensors", "fp32"))
report = {"family": [model.family.name, vq.family.name], "kind": model.info.kind}
prompt = sys.argv[3]
cond = first(ClipTextCondition.execute(model, clip, prompt, 2))
sampler = first(NextScaleSampling.execute("off", 0.3, "var"))
tokens, stats = ARSample.execute(model=model, conditioning=cond, sampler=sampler, vq=vq, seed=3, cfg=3.0, top_k=0,
                                 top_p=1.0, temperature=1.0, cfg_interval=-1).result

# the library on the same files, seed and text encoder folder
from arsample_pack.models import registry
vae = registry.load_tokenizer(folder_paths.get_full_path("vq", "vae_tiny.safetensors"))
star = registry.load_model(folder_paths.get_full_path("autoregressive", "star-tiny.pth"), tokenizer=vae)
text, empty = encode_sd21_prompts(root, [prompt, prompt])
lib = star.family.prompt_condition(star.info, text.states, text.mask, [prompt] * 2, pooled=text.pooled,
                                   null=(empty.states[:1], empty.mask[:1], empty.pooled[:1]))
ref = sample_next_scale(star.module.bind(vae.module), lib.value, SamplerSettings(cfg_scale=3.0), seed=3)
report["tokens"], report["ref"], report["stats"] = tokens.tokens.tolist(), ref.tokens.tolist(), stats

def refused(call):
    try:
        call()
        return None
    except Exception as exc:
        return [type(exc).__name__, str(exc)]

tiny = first(ModelLoader.execute("embedded:tiny", "fp32", "auto"))
report["errors"] = {
    "clip_on_class_model": refused(lambda: ClipTextCondition.execute(tiny, clip, prompt, 1)),
    "narrow_clip": refused(lambda: ClipTextCondition.execute(model, narrow, prompt, 1)),
    "classes_on_star": refused(lambda: ClassCondition.execute(model, "1", 1)),
    "empty_prompt": refused(lambda: ClipTextCondition.execute(model, clip, "  ", 1)),
}
json.dump(report, open(work / "out.json", "w"))
"""


@pytest.fixture(scope="module")
def outcome(tmp_path_factory, run_pack_script):
    from arsample.models.checkpoint import read_checkpoint

    work = tmp_path_factory.mktemp("star_nodes")
    (work / "models" / "autoregressive").mkdir(parents=True)
    (work / "models" / "vq").mkdir()
    state, _ = read_checkpoint(GOLDEN / "star_tiny.safetensors")
    torch.save({"epoch": 1, "trainer": {"config": {"patch_nums": [1, 2, 3, 4]}, "var_wo_ddp": state}},
               work / "models" / "autoregressive" / "star-tiny.pth")
    (work / "models" / "vq" / "vae_tiny.safetensors").write_bytes((GOLDEN / "var_vqvae_tiny.safetensors").read_bytes())
    run_pack_script(SCRIPT, work, PROMPT)
    return json.loads((work / "out.json").read_text())


def test_star_snapshot_and_var_vqvae_load_through_the_registry(outcome):
    assert outcome["family"] == ["star", "var"] and outcome["kind"] == "prompt"


def test_clip_text_condition_and_ar_sample_give_the_library_tokens(outcome):
    assert outcome["tokens"] == outcome["ref"]
    assert len(outcome["tokens"]) == 2 and len(outcome["tokens"][0]) == 1 + 4 + 9 + 16
    assert outcome["stats"].split(":")[0] == "scale"


@pytest.mark.parametrize("case, words", [
    ("clip_on_class_model", "class-to-image"),
    ("narrow_clip", "32"),
    ("classes_on_star", "text-to-image"),
    ("empty_prompt", "empty"),
])
def test_what_cannot_work_is_refused(outcome, case, words):
    error = outcome["errors"][case]
    assert error is not None and words in error[1], error
