"""STAR's text features from ComfyUI's own SD2 CLIP (nodes/clip_text_features.py) equal the library's
(models/clip_text.py on the SD-2.1 folder), in-process in the ComfyUI venv.

The script makes a tiny random SD-2.1 text encoder in the HF layout (23 blocks, width 32, ComfyUI's CLIP BPE
vocabulary with SD-2.1's special tokens: pad "!"), computes the library features from that folder, and loads the
same weights with ComfyUI's CLIP loader (``comfy.sd.load_clip``, type stable_diffusion, detected as SD2 CLIP-H by
its 23 blocks; ``clip_h_model_config`` shrinks ComfyUI's tower to width 32, it keeps ComfyUI's 24 blocks) from two
files users have: the HF ``text_encoder/model.safetensors`` as is (ComfyUI's 24th block is then not loaded) and an
OpenCLIP-format file with a real 24th block (as SD-2.x's full tower).
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
import json, shutil, sys
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
from arsample_pack.models.clip_text import encode_sd21_prompts
from arsample_pack.nodes.clip_text_features import features_from_comfy_clip

W = 32
root = work / "stable-diffusion-2-1"
tok = root / "tokenizer"
tok.mkdir(parents=True)
for name in ("vocab.json", "merges.txt"):  # the CLIP BPE (OpenAI's, which OpenCLIP and SD-2.x use too)
    shutil.copy(Path(tree) / "comfy" / "sd1_tokenizer" / name, tok / name)
special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
           "pad_token": "!"}
(tok / "special_tokens_map.json").write_text(json.dumps(special))
(tok / "tokenizer_config.json").write_text(json.dumps(dict(special, tokenizer_class="CLIPTokenizer",
                                                           model_max_length=77, do_lower_case=True)))

def tiny(layers, seed):
    config = transformers.CLIPTextConfig(vocab_size=49408, hidden_size=W, intermediate_size=2 * W,
                                         num_hidden_layers=layers, num_attention_heads=2, max_position_embeddings=77,
                                         hidden_act="gelu", projection_dim=W, bos_token_id=0, eos_token_id=2,
                                         pad_token_id=1)
    torch.manual_seed(seed)
    model = transformers.CLIPTextModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.add_(0.3 * torch.randn_like(p))
    return model

def write_hf(model, folder):  # as the SD-2.1 repository's file: keys under 'text_model.', the position_ids buffer
    model.save_pretrained(folder)
    sd = {("" if k.startswith("text_model.") else "text_model.") + k: v.contiguous()
          for k, v in model.state_dict().items()}
    save_file(dict(sd, **{"text_model.embeddings.position_ids": torch.arange(77)[None]}),
              str(folder / "model.safetensors"), metadata={"format": "pt"})
    return sd, folder / "model.safetensors"

model = tiny(23, 0)
sd, hf_file = write_hf(model, root / "text_encoder")

# OpenCLIP layout: the same 23 blocks, then a random 24th block, a text projection
g = torch.Generator().manual_seed(5)
oc = {"token_embedding.weight": sd["text_model.embeddings.token_embedding.weight"],
      "positional_embedding": sd["text_model.embeddings.position_embedding.weight"],
      "ln_final.weight": sd["text_model.final_layer_norm.weight"],
      "ln_final.bias": sd["text_model.final_layer_norm.bias"],
      "text_projection": torch.randn(W, W, generator=g)}
names = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj", "mlp.c_fc": "mlp.fc1",
         "mlp.c_proj": "mlp.fc2"}
for i in range(23):
    hf = f"text_model.encoder.layers.{i}."
    for o, h in names.items():
        for y in ("weight", "bias"):
            oc[f"transformer.resblocks.{i}.{o}.{y}"] = sd[hf + f"{h}.{y}"]
    for y in ("weight", "bias"):
        oc[f"transformer.resblocks.{i}.attn.in_proj_{y}"] = torch.cat([sd[hf + f"self_attn.{p}_proj.{y}"]
                                                                      for p in "qkv"])
for k in [k for k in oc if k.startswith("transformer.resblocks.22.")]:
    oc[k.replace(".22.", ".23.")] = oc[k] + 0.5 * torch.randn(oc[k].shape, generator=g)
oc_file = work / "sd21_openclip_h.safetensors"
save_file({k: v.contiguous() for k, v in oc.items()}, str(oc_file))

cond, null = encode_sd21_prompts(root, prompts)
out = {"lib": {"cond": [cond.states, cond.mask, cond.pooled], "null": [null.states, null.mask, null.pooled]}}
report = {}
small = {"hidden_size": W, "intermediate_size": 2 * W, "num_attention_heads": 2}

def state(clip):
    m, t = clip.cond_stage_model.clip_h, clip.tokenizer.clip_h
    return [clip.layer_idx, m.layer, m.layer_idx, m.return_projected_pooled, m.enable_attention_masks, t.pad_token,
            str(t.tokenizer.pad_token), t.tokenizer("hi!")["input_ids"]]

for name, path in (("hf", hf_file), ("openclip", oc_file)):
    clip = comfy.sd.load_clip([str(path)], clip_type=comfy.sd.CLIPType.STABLE_DIFFUSION,
                              model_options={"clip_h_model_config": small, "dtype": torch.float32})
    before = state(clip)
    c, n = features_from_comfy_clip(clip, prompts, expected_width=W)
    c2, _ = features_from_comfy_clip(clip, prompts[:1])
    after = state(clip)
    # ComfyUI's own encoding, for comparison: default (penultimate, no mask) and 'CLIP Set Last Layer' -1
    default = clip.encode_from_tokens(clip.tokenize(prompts[0]), return_pooled=True)
    last = clip.clone()
    last.clip_layer(-1)
    last_cond = last.encode_from_tokens(last.tokenize(prompts[0]))
    out[name] = {"cond": [c.states, c.mask, c.pooled], "null": [n.states, n.mask, n.pooled], "again": c2.states,
                 "default": default[0], "default_pooled": default[1], "last": last_cond}
    report[name] = {"blocks": len(clip.cond_stage_model.clip_h.transformer.text_model.encoder.layers),
                    "before": before, "after": after, "prompts": [list(c.prompts), list(n.prompts)]}

def refused(call):
    try:
        call()
        return None
    except ConfigError as exc:
        return str(exc)

clip = comfy.sd.load_clip([str(hf_file)], clip_type=comfy.sd.CLIPType.STABLE_DIFFUSION,
                          model_options={"clip_h_model_config": small, "dtype": torch.float32})
class Target:  # what ComfyUI's loader builds for an SD1 CLIP-L (load_clip fixes CLIP-L's config: built directly)
    clip, tokenizer, params = comfy.sd1_clip.SD1ClipModel, comfy.sd1_clip.SD1Tokenizer, {}
clip_l = comfy.sd.CLIP(Target(), model_options={"clip_l_model_config": dict(small, num_hidden_layers=2),
                                                "dtype": torch.float32})
report["errors"] = {"width": refused(lambda: features_from_comfy_clip(clip, prompts, expected_width=1024)),
                    "clip_l": refused(lambda: features_from_comfy_clip(clip_l, prompts)),
                    "empty": refused(lambda: features_from_comfy_clip(clip, []))}
report["clip_l_kind"] = type(clip_l.cond_stage_model).__name__
torch.save(out, work / "out.pt")
(work / "report.json").write_text(json.dumps(report))
"""


@pytest.fixture(scope="module")
def outcome(tmp_path_factory, run_pack_script):
    work = tmp_path_factory.mktemp("clip_text")
    run_pack_script(SCRIPT, work, json.dumps(PROMPTS))
    return torch.load(work / "out.pt"), json.loads((work / "report.json").read_text())


def _diff(a, b) -> float:
    return float((a.float() - b.float()).abs().max())


@pytest.mark.parametrize("source", ["hf", "openclip"])
def test_comfy_clip_features_equal_the_library_features(outcome, source):
    out, report = outcome
    assert report[source]["blocks"] == 24  # ComfyUI's tower; the library's (HF) has 23
    for part in ("cond", "null"):
        (s, m, p), (ls, lm, lp) = out[source][part], out["lib"][part]
        assert s.shape == ls.shape == (len(PROMPTS), 77, 32) and s.dtype == torch.float32
        assert m.dtype == torch.bool and torch.equal(m, lm)
        assert p.shape == lp.shape == (len(PROMPTS), 32) and p.dtype == torch.float32
        assert _diff(s, ls) <= TOL and _diff(p, lp) <= TOL, (part, _diff(s, ls), _diff(p, lp))
    assert report[source]["prompts"] == [PROMPTS, [""] * len(PROMPTS)]
    assert _diff(out[source]["again"][0], out["lib"]["cond"][0][0]) <= TOL  # tokenizer copy cached, same result


def test_raw_tokens_long_prompt_and_empty_rows(outcome):
    out, _ = outcome
    _, mask, _ = out["lib"]["cond"]
    _, null_mask, _ = out["lib"]["null"]
    assert mask[3].all()  # the 90-word prompt fills the 77 tokens (cut, not split into chunks)
    assert int(mask[2].sum()) > 10  # the weight syntax and "embedding:" are plain text (no weighting, no embedding)
    assert null_mask.sum(dim=1).tolist() == [2] * len(PROMPTS)


def test_the_users_clip_is_left_as_it_was(outcome):
    _, report = outcome
    for source in ("hf", "openclip"):
        before, after = report[source]["before"], report[source]["after"]
        assert before == after
        layer_idx, layer, layer_index, projected, masks, pad, hf_pad, hi = after
        assert layer_idx is None and (layer, layer_index) == ("hidden", -2) and projected and not masks
        assert pad == 0 and hf_pad == "<|endoftext|>" and hi == [49406, 1883, 256, 49407]  # "!" stays 256 there


def test_what_comfyui_itself_gives_differs_where_expected(outcome):
    """ComfyUI's default SD2 conditioning is the same block (its penultimate = the HF export's last), so the real
    tokens agree; its padding positions do not (no attention mask); its pooled output is another vector (24th block,
    projected); and 'CLIP Set Last Layer' -1 (OpenCLIP's 24th block, which STAR never saw) is far off."""
    out, _ = outcome
    states, mask, pooled = out["lib"]["cond"]
    n = int(mask[0].sum())
    default = out["openclip"]["default"][0]
    assert _diff(default[:n], states[0, :n]) <= TOL
    assert _diff(default[n:], states[0, n:]) > 1e-3
    assert _diff(out["openclip"]["default_pooled"][0], pooled[0]) > 1e-3
    assert _diff(out["openclip"]["last"][0, :n], states[0, :n]) > 1e-2


def test_clear_errors(outcome):
    _, report = outcome
    errors = report["errors"]
    assert "32-wide" in errors["width"] and "1024" in errors["width"]
    assert report["clip_l_kind"] == "SD1ClipModel"
    assert "SD-2.x text encoder" in errors["clip_l"] and "SD1ClipModel" in errors["clip_l"]
    assert "at least one prompt" in errors["empty"]
    assert all("\n" not in e for e in errors.values())
