"""Meissonic's text features from ComfyUI's own CLIP (nodes/clip_text_features.py,
``meissonic_features_from_comfy_clip``) equal the library's (models/meissonic_text.py on the Meissonic folder),
in-process in the ComfyUI venv.

The script makes a tiny random Meissonic text encoder in the HF layout (``CLIPTextModelWithProjection``: 24 blocks,
width 32, ``text_projection.weight``; ComfyUI's CLIP BPE vocabulary with Meissonic's special tokens: pad "!"),
computes the library features from that folder, and loads the same weights with ComfyUI's CLIP loader
(``comfy.sd.load_clip``, type stable_diffusion, detected as SD2 CLIP-H; ``clip_h_model_config`` shrinks ComfyUI's
tower to width 32) from two files: Meissonic's ``text_encoder/model.safetensors`` as is, and an OpenCLIP-format file
of the same weights (as laion's CLIP-H or an SD-2.x checkpoint's full tower). An SD-2.1-style HF text encoder
(``CLIPTextModel``, 23 blocks, no projection) loads in ComfyUI with its 24th block and projection unloaded: refused.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROMPTS = ["A photo of a red fox in the snow", "the cat on the mat!", "(masterpiece:1.4) a cat, embedding:nothing",
           "fox " * 90]
TOL = 1e-5

SCRIPT = r"""
import ctypes, json, logging, shutil, sys
from pathlib import Path
import torch
tree, work, prompts = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
sys.path[:0] = [tree, str(work)]
torch.set_num_threads(1)
from comfy.cli_args import args
args.cpu = True
import comfy.sd
import comfy.sd1_clip
import transformers
from safetensors.torch import save_file
from arsample_pack.errors import ConfigError
from arsample_pack.models.meissonic_text import MEISSONIC_NEGATIVE_PROMPT, encode_meissonic_prompts
from arsample_pack.nodes.clip_text_features import meissonic_features_from_comfy_clip

class Missing(logging.Handler):  # ComfyUI's "clip missing: [...]" warnings
    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []
    def emit(self, record):
        if "clip missing" in record.getMessage():
            self.lines.append(record.getMessage())
missing = Missing()
logging.getLogger().addHandler(missing)

W = 32
root = work / "Meissonic"
tok = root / "tokenizer"
tok.mkdir(parents=True)
for name in ("vocab.json", "merges.txt"):  # the CLIP BPE (OpenAI's, which OpenCLIP and Meissonic use too)
    shutil.copy(Path(tree) / "comfy" / "sd1_tokenizer" / name, tok / name)
special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
           "pad_token": "!"}
(tok / "special_tokens_map.json").write_text(json.dumps(special))
(tok / "tokenizer_config.json").write_text(json.dumps(dict(special, tokenizer_class="CLIPTokenizer",
                                                           model_max_length=77, do_lower_case=True)))

def tiny(layers, seed, projection):
    config = transformers.CLIPTextConfig(vocab_size=49408, hidden_size=W, intermediate_size=2 * W,
                                         num_hidden_layers=layers, num_attention_heads=2, max_position_embeddings=77,
                                         hidden_act="gelu", projection_dim=W, bos_token_id=0, eos_token_id=2,
                                         pad_token_id=1)
    torch.manual_seed(seed)
    cls = transformers.CLIPTextModelWithProjection if projection else transformers.CLIPTextModel
    model = cls(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.add_(0.3 * torch.randn_like(p))
    return model

def write_hf(model, folder):  # as Meissonic's file: keys under 'text_model.', 'text_projection.weight'
    model.save_pretrained(folder)
    sd = {(k if k.startswith(("text_model.", "text_projection")) else "text_model." + k): v.contiguous()
          for k, v in model.state_dict().items()}
    save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return sd, folder / "model.safetensors"

model = tiny(24, 0, True)
sd, hf_file = write_hf(model, root / "text_encoder")

# OpenCLIP layout of the same weights: resblocks with fused in_proj, text_projection as the (width, embed) matrix
oc = {"token_embedding.weight": sd["text_model.embeddings.token_embedding.weight"],
      "positional_embedding": sd["text_model.embeddings.position_embedding.weight"],
      "ln_final.weight": sd["text_model.final_layer_norm.weight"],
      "ln_final.bias": sd["text_model.final_layer_norm.bias"],
      "text_projection": sd["text_projection.weight"].t()}
names = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj", "mlp.c_fc": "mlp.fc1",
         "mlp.c_proj": "mlp.fc2"}
for i in range(24):
    hf = f"text_model.encoder.layers.{i}."
    for o, h in names.items():
        for y in ("weight", "bias"):
            oc[f"transformer.resblocks.{i}.{o}.{y}"] = sd[hf + f"{h}.{y}"]
    for y in ("weight", "bias"):
        oc[f"transformer.resblocks.{i}.attn.in_proj_{y}"] = torch.cat([sd[hf + f"self_attn.{p}_proj.{y}"]
                                                                      for p in "qkv"])
oc_file = work / "clip_vit_h_openclip.safetensors"
save_file({k: v.contiguous() for k, v in oc.items()}, str(oc_file))

# SD-2.1's HF text encoder: CLIPTextModel, 23 blocks, no projection
_, sd21_file = write_hf(tiny(23, 1, False), work / "sd21" / "text_encoder")

negatives = {"empty": "", "readme": MEISSONIC_NEGATIVE_PROMPT, "list": ["", "blurry", MEISSONIC_NEGATIVE_PROMPT, ""]}
out = {"lib": {}}
for key, neg in negatives.items():
    c, n = encode_meissonic_prompts(root, prompts, neg)
    out["lib"][key] = [c.states, c.pooled, n.states, n.pooled]
with torch.no_grad():
    out["lib_ln"] = model.text_model.final_layer_norm(out["lib"]["empty"][0])
report = {}
small = {"hidden_size": W, "intermediate_size": 2 * W, "num_attention_heads": 2}

def load(path):
    return comfy.sd.load_clip([str(path)], clip_type=comfy.sd.CLIPType.STABLE_DIFFUSION,
                              model_options={"clip_h_model_config": small, "dtype": torch.float32})

def state(clip):
    m, t = clip.cond_stage_model.clip_h, clip.tokenizer.clip_h
    return [clip.layer_idx, m.layer, m.layer_idx, m.return_projected_pooled, m.enable_attention_masks,
            m.layer_norm_hidden_state, t.pad_token, str(t.tokenizer.pad_token), t.tokenizer("hi!")["input_ids"]]

for name, path in (("hf", hf_file), ("openclip", oc_file)):
    missing.lines.clear()
    clip = load(path)
    loaded_missing = list(missing.lines)
    before = state(clip)
    out[name] = {}
    for key, neg in negatives.items():
        c, n = meissonic_features_from_comfy_clip(clip, prompts, neg, expected_width=W)
        out[name][key] = [c.states, c.pooled, n.states, n.pooled]
        if key == "list":
            report.setdefault("prompts", {})[name] = [list(c.prompts), list(n.prompts)]
    after = state(clip)
    # ComfyUI's own SD2 encoding, for comparison: its default layer (penultimate, after the final LayerNorm)
    default = clip.encode_from_tokens(clip.tokenize(prompts[0]), return_pooled=True)
    out[name]["default"], out[name]["default_pooled"] = default[0], default[1]
    report[name] = {"blocks": len(clip.cond_stage_model.clip_h.transformer.text_model.encoder.layers),
                    "missing": loaded_missing, "before": before, "after": after}

def refused(call):
    try:
        call()
        return None
    except ConfigError as exc:
        return str(exc)

errors = {}
# SD-2.1's 23-block HF export: ComfyUI leaves the 24th block and the projection unloaded (uninitialized memory).
# Deterministic stand-ins for that memory: NaN (torch's fill of uninitialized memory), zeros (fresh pages), and
# pointers read as floats (what showed up on the CPU)
torch.use_deterministic_algorithms(True, warn_only=True)
torch.utils.deterministic.fill_uninitialized_memory = True
missing.lines.clear()
sd21 = load(sd21_file)
torch.use_deterministic_algorithms(False)
report["sd21_missing"] = list(missing.lines)
t = sd21.cond_stage_model.clip_h.transformer
report["sd21_nan_filled"] = [bool(t.text_model.encoder.layers[23].mlp.fc1.weight.isnan().all()),
                             bool(t.text_projection.weight.isnan().all()),
                             bool(t.text_model.encoder.layers[22].mlp.fc1.weight.isfinite().all())]
errors["sd21_nan"] = refused(lambda: meissonic_features_from_comfy_clip(sd21, prompts))
with torch.no_grad():
    for p in list(t.text_model.encoder.layers[23].parameters()) + [t.text_projection.weight]:
        p.zero_()
errors["sd21_zeros"] = refused(lambda: meissonic_features_from_comfy_clip(sd21, prompts))
hf_clip = load(hf_file)
with torch.no_grad():
    w = hf_clip.cond_stage_model.clip_h.transformer.text_projection.weight
    w.view(torch.int32).copy_(torch.tensor([-614902651, 32560], dtype=torch.int32).repeat(w.numel() // 2).view(w.shape))
    report["pointer_values"] = w.flatten()[:2].tolist()
errors["pointers"] = refused(lambda: meissonic_features_from_comfy_clip(hf_clip, prompts))

clip = load(hf_file)
class Target:  # what ComfyUI's loader builds for an SD1 CLIP-L (load_clip fixes CLIP-L's config: built directly)
    clip, tokenizer, params = comfy.sd1_clip.SD1ClipModel, comfy.sd1_clip.SD1Tokenizer, {}
clip_l = comfy.sd.CLIP(Target(), model_options={"clip_l_model_config": dict(small, num_hidden_layers=2),
                                                "dtype": torch.float32})
errors.update({"width": refused(lambda: meissonic_features_from_comfy_clip(clip, prompts, expected_width=1024)),
               "clip_l": refused(lambda: meissonic_features_from_comfy_clip(clip_l, prompts)),
               "empty": refused(lambda: meissonic_features_from_comfy_clip(clip, [])),
               "negatives": refused(lambda: meissonic_features_from_comfy_clip(clip, prompts, ["a", "b"]))})
report["errors"] = errors
report["clip_l_kind"] = type(clip_l.cond_stage_model).__name__
torch.save(out, work / "out.pt")
(work / "report.json").write_text(json.dumps(report))
"""


@pytest.fixture(scope="module")
def outcome(tmp_path_factory, run_pack_script):
    work = tmp_path_factory.mktemp("meissonic_text")
    run_pack_script(SCRIPT, work, json.dumps(PROMPTS))
    return torch.load(work / "out.pt"), json.loads((work / "report.json").read_text())


def _diff(a, b) -> float:
    return float((a.float() - b.float()).abs().max())


@pytest.mark.parametrize("source", ["hf", "openclip"])
@pytest.mark.parametrize("negative", ["empty", "readme", "list"])
def test_comfy_clip_features_equal_the_library_features(outcome, source, negative):
    out, report = outcome
    assert report[source]["blocks"] == 24 and report[source]["missing"] == []  # every weight of the file loads
    got, lib = out[source][negative], out["lib"][negative]
    for g, ref in zip(got, lib):
        assert g.dtype == torch.float32 and g.shape == ref.shape and g.shape[0] == len(PROMPTS)
        assert _diff(g, ref) <= TOL, (negative, _diff(g, ref))
    assert got[0].shape[1:] == (77, 32) and got[1].shape[1:] == (32,)


def test_prompts_and_negative_rows(outcome):
    out, report = outcome
    readme = ("worst quality, low quality, low res, blurry, distortion, watermark, logo, signature, text, "
              "jpeg artifacts, signature, sketch, duplicate, ugly, identifying mark")
    negs = ["", "blurry", readme, ""]
    for source in ("hf", "openclip"):
        assert report["prompts"][source] == [PROMPTS, negs]
    states = out["hf"]["list"][2]
    assert _diff(states[0], states[3]) == 0 and _diff(states[0], out["hf"]["empty"][2][0]) == 0
    assert _diff(states[1], states[0]) > 1e-3
    assert _diff(out["hf"]["readme"][2][1], out["hf"]["list"][2][2]) == 0


def test_the_users_clip_is_left_as_it_was(outcome):
    _, report = outcome
    for source in ("hf", "openclip"):
        before, after = report[source]["before"], report[source]["after"]
        assert before == after
        layer_idx, layer, layer_index, projected, masks, layer_norm, pad, hf_pad, hi = after
        assert layer_idx is None and (layer, layer_index) == ("hidden", -2) and projected and not masks and layer_norm
        assert pad == 0 and hf_pad == "<|endoftext|>" and hi == [49406, 1883, 256, 49407]


def test_what_comfyui_itself_gives(outcome):
    """ComfyUI's default SD2 conditioning is the same block and the same padding ("!", no mask) after the final
    LayerNorm, which Meissonic does not apply; its pooled output is Meissonic's (projected, at the end token)."""
    out, _ = outcome
    states, pooled = out["lib"]["empty"][0], out["lib"]["empty"][1]
    default = out["openclip"]["default"][0]
    assert _diff(default, out["lib_ln"][0]) <= TOL
    assert _diff(default, states[0]) > 1e-2
    assert _diff(out["openclip"]["default_pooled"][0], pooled[0]) <= TOL


def test_an_sd2_text_encoder_is_refused(outcome):
    _, report = outcome
    missing = " ".join(report["sd21_missing"])
    assert "text_model.encoder.layers.23." in missing and "text_projection.weight" in missing
    assert report["sd21_nan_filled"] == [True, True, True]  # unloaded: NaN-filled here; loaded: finite
    errors = report["errors"]
    for key in ("sd21_nan", "sd21_zeros", "pointers"):
        assert errors[key] is not None, key
        assert "not Meissonic's text encoder" in errors[key] and "Load CLIP" in errors[key]
        assert "text_encoder/model.safetensors" in errors[key] and "stable_diffusion" in errors[key]
    assert "last block" in errors["sd21_nan"] and "text projection" in errors["pointers"]
    assert report["pointer_values"][0] < -1e16 and 0 < report["pointer_values"][1] < 1e-40


def test_clear_errors(outcome):
    _, report = outcome
    errors = report["errors"]
    assert "32-wide text" in errors["width"] and "1024" in errors["width"]
    assert report["clip_l_kind"] == "SD1ClipModel"
    assert "SD1ClipModel" in errors["clip_l"] and "Meissonic's text_encoder/model.safetensors" in errors["clip_l"]
    assert "at least one prompt" in errors["empty"]
    assert "one string per prompt (4)" in errors["negatives"]
    assert all("\n" not in e for e in errors.values())
