"""Meissonic in a real ComfyUI server: the Meissonic folder as downloaded in ``models/autoregressive/Meissonic/``,
ComfyUI's own 'Load CLIP' (type stable_diffusion) on its text encoder, 'Load AR Model' (its ``transformer/`` file) +
'Load VQ Tokenizer' (its ``vqvae/`` file, offered from models/autoregressive/) + 'Text Condition (CLIP)' with a
negative prompt + 'Masked Sampling' (+ 'Entropy Temperature') + 'AR Sample' + 'VQ Decode' give exactly the tokens,
per-token entropies and images of the library on the same folder and seed (``registry.load_model/load_tokenizer``,
``models.meissonic_text.encode_meissonic_prompts``, ``family.prompt_condition``, the catalog masked samplers). What
cannot work is a clear node error after which the server keeps serving: a class condition for the text model, a
Meissonic VQ with a LlamaGen model and the reverse, a folder without its vqvae/, the folder's vqvae/ or
text_encoder/ file in the model loader. The shipped Meissonic workflow runs here on the tiny folder (at its 1024 px
and 48 steps); ``test_pack_in_comfyui.py`` checks it against the live node definitions with the other workflows.

The folder: the golden tiny Meissonic transformer (its text input widened to 16, see below) and VQ (2 px per
token) with their ``config.json``, and a tiny random ``CLIPTextModelWithProjection`` (24 blocks, width 16,
projection 16 → 16, ComfyUI's CLIP BPE vocabulary with Meissonic's pad "!") in ``text_encoder/`` + ``tokenizer/``,
whose ``model.safetensors`` is also in ``models/text_encoders/``. ComfyUI builds CLIP-H at its real width (1024)
from its own config; the only change to the server is a test custom node that passes ComfyUI's own
``clip_h_model_config`` option (width 16) to ``comfy.sd.load_clip``, as the in-process CLIP tests do
(``test_meissonic_text_in_comfyui.py``); ``--fp32-text-enc`` keeps the text encoder in fp32 as the library. ComfyUI's
square CLIP-H projection needs a transformer whose text width equals its pooled width (1024 and 1024 in
Meissonic), so the golden transformer's 12 → 16 ``context_embedder`` is replaced by a seeded random 16 → 16 one.

Image size: the model loader does not see the VQ, so it turns pixels into tokens at Meissonic's 16 px per token:
256 px is a 16×16 grid (256 tokens), decoded by the tiny VQ at 2 px per token to 32×32 pictures.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from comfyui_env import PACK_DIR, cache_dir, comfyui_python, comfyui_tree  # noqa: E402
from comfyui_server import ComfyServer, execution_error  # noqa: E402
from comfyui_workflows import ui_to_api  # noqa: E402

from arsample.models.meissonic_text import MEISSONIC_NEGATIVE_PROMPT  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "fixtures" / "golden"
WORKFLOW = ROOT / "workflows" / "ARsample_meissonic_t2i_compare_samplers.json"
WIDTH = 16  # the tiny CLIP's width = its projection = the transformer's text and pooled widths
TRANSFORMER = "Meissonic/transformer/diffusion_pytorch_model.safetensors"
VQ = "Meissonic/vqvae/diffusion_pytorch_model.safetensors"
TEXT_ENCODER = "Meissonic/text_encoder/model.safetensors"
CLIP = "meissonic_tiny_clip.safetensors"  # the same file in models/text_encoders/, for 'Load CLIP'
NO_VQ = "MeissonicNoVQ/vqvae/diffusion_pytorch_model.safetensors"  # a folder with transformer/ only
NEGATIVE = MEISSONIC_NEGATIVE_PROMPT  # the Meissonic README's, as the shipped workflow
PROMPT = "a red fox in the snow, golden hour"
TEMPERATURE = dict(preset="meissonic", t0=2.5, alpha=3.0, theta=0.7, clamp_min=0.0, clamp_max=0.0,
                   entropy_source="filtered")  # a preset keeps its own values: the library's preset("meissonic")
WIDGETS = dict(steps=12, schedule="cosine", choice_temperature_start=2.0, choice_temperature_end=0.0)

# name → Masked Sampling switches, Entropy Temperature connected, the catalog sampler the library runs, negative
# prompt, batch size, seed, other Masked Sampling widgets
CASES = {
    # the switches are on but no temperature is connected: plain decoding; the empty negative prompt (encoded)
    "plain": dict(prob=True, masking=True, temperature=False, sampler="masked", negative="", batch=1, seed=4),
    "prob": dict(prob=True, masking=False, temperature=True, sampler="masked-prob", negative=NEGATIVE, batch=1,
                 seed=4),
    "masking": dict(prob=False, masking=True, temperature=True, sampler="masked-masking", negative=NEGATIVE, batch=1,
                    seed=4),
    "both": dict(prob=True, masking=True, temperature=True, sampler="masked-prob-masking", negative=NEGATIVE,
                 batch=2, seed=5),
    "both_linear": dict(prob=True, masking=True, temperature=True, sampler="masked-prob-masking", negative="blurry",
                        batch=1, seed=6, widgets=dict(steps=7, schedule="linear", choice_temperature_start=3.0,
                                                      choice_temperature_end=0.5)),
}
for _case in CASES.values():
    _case["widgets"] = dict(WIDGETS, **_case.get("widgets", {}))

SETUP = r"""
import json, shutil, sys
from pathlib import Path
import numpy as np
import torch
tree, work, golden, cases, W = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), json.loads(sys.argv[4]), int(sys.argv[5])
sys.path[:0] = [tree, str(work)]
torch.set_num_threads(1)
import transformers
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from arsample_pack import imaging
from arsample_pack.models import registry
from arsample_pack.models.meissonic_text import encode_meissonic_prompts
from arsample_pack.samplers import MaskedOptions, SamplerSettings, named_sampler

models = work / "models"
ar = models / "autoregressive"
root = ar / "Meissonic"
for sub in ("vq", "text_encoders"):
    (models / sub).mkdir(parents=True)

# transformer/ and vqvae/: the golden tiny parts with their config.json; the transformer's text input widened to W
with safe_open(str(golden / "meissonic_tiny.safetensors"), "pt") as f:
    meta = f.metadata()
state = load_file(golden / "meissonic_tiny.safetensors")
inner = state["context_embedder.weight"].shape[0]
g = torch.Generator().manual_seed(0)
state["context_embedder.weight"] = torch.randn(inner, W, generator=g) / W ** 0.5
config = dict(json.loads(meta["config"]), joint_attention_dim=W)
for part, cfg, sd in (("transformer", config, state),
                      ("vqvae", json.loads(meta["vq_config"]), load_file(golden / "meissonic_vqvae_tiny.safetensors"))):
    (root / part).mkdir(parents=True)
    (root / part / "config.json").write_text(json.dumps(cfg))
    save_file(sd, str(root / part / "diffusion_pytorch_model.safetensors"))
shutil.copytree(root / "transformer", ar / "MeissonicNoVQ" / "transformer")

# tokenizer/ and text_encoder/ as in the Meissonic repository: a tiny CLIPTextModelWithProjection
tok = root / "tokenizer"
tok.mkdir()
for name in ("vocab.json", "merges.txt"):
    shutil.copy(Path(tree) / "comfy" / "sd1_tokenizer" / name, tok / name)
special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
           "pad_token": "!"}
(tok / "special_tokens_map.json").write_text(json.dumps(special))
(tok / "tokenizer_config.json").write_text(json.dumps(dict(special, tokenizer_class="CLIPTokenizer",
                                                           model_max_length=77, do_lower_case=True)))
clip_config = transformers.CLIPTextConfig(vocab_size=49408, hidden_size=W, intermediate_size=2 * W,
                                          num_hidden_layers=24, num_attention_heads=2, max_position_embeddings=77,
                                          hidden_act="gelu", projection_dim=W, bos_token_id=0, eos_token_id=2,
                                          pad_token_id=1)
torch.manual_seed(0)
clip = transformers.CLIPTextModelWithProjection(clip_config).eval()
with torch.no_grad():
    for name, p in clip.named_parameters():
        if "layer_norm" in name:
            p.add_(0.3 * torch.randn_like(p))
clip.save_pretrained(root / "text_encoder")
sd = {(k if k.startswith(("text_model.", "text_projection")) else "text_model." + k): v.contiguous()
      for k, v in clip.state_dict().items()}
save_file(sd, str(root / "text_encoder" / "model.safetensors"), metadata={"format": "pt"})
shutil.copy(root / "text_encoder" / "model.safetensors", models / "text_encoders" / sys.argv[6])
# the shipped workflow's names: Load CLIP reads text_encoders/Meissonic/text_encoder/model.safetensors
(models / "text_encoders" / "Meissonic" / "text_encoder").mkdir(parents=True)
shutil.copy(root / "text_encoder" / "model.safetensors", models / "text_encoders" / "Meissonic" / "text_encoder")

# the library on the same folder, as the nodes run it (no tokenizer given to the model: 16 px per token)
vq = registry.load_tokenizer(root)
model = registry.load_model(root, image_size=256)
family = model.family
report = {"grid": list(model.module.grid), "families": [model.family.name, vq.family.name],
          "prompt": [model.info.prompt.encoder_kind, model.info.prompt.clip_features, model.info.prompt.width]}
for name, case in cases.items():
    text, negative = encode_meissonic_prompts(root, [case["prompt"]], case["negative"])
    b = case["batch"]
    cond = family.prompt_condition(model.info, text.states.repeat(b, 1, 1), None, [case["prompt"]] * b,
                                   pooled=text.pooled.repeat(b, 1), null=(negative.states, None, negative.pooled))
    w = case["widgets"]
    options = MaskedOptions(steps=w["steps"], schedule=w["schedule"],
                            choice_temperature=(w["choice_temperature_start"], w["choice_temperature_end"]))
    base = SamplerSettings(cfg_scale=case["cfg"], top_k=0, top_p=1.0, temperature=1.0, cfg_interval=-1)
    sampler = named_sampler(case["sampler"], base, "meissonic", masked=options)
    result = sampler.run(family.sampling_model(model.module), cond.value, seed=case["seed"])
    image = imaging.to_unit_float(family.decode(vq.module, result.tokens, result.layout))
    pixels = np.clip(255.0 * image.cpu().numpy(), 0, 255).astype(np.uint8)  # as SaveImage writes it
    report[name] = {"tokens": result.tokens.tolist(), "entropy": result.entropy.float().tolist(),
                    "passes": result.stats.forward_passes, "pixels": pixels.tolist()}
json.dump(report, open(work / "reference.json", "w"))
"""

# A test custom node: ComfyUI's 'Load CLIP' builds CLIP-H at the tiny width (ComfyUI's own clip_h_model_config).
SHIM = """import comfy.sd

_load_clip = comfy.sd.load_clip
SMALL = {{"hidden_size": {w}, "intermediate_size": {w2}, "num_attention_heads": 2}}


def load_clip(ckpt_paths, embedding_directory=None, clip_type=comfy.sd.CLIPType.STABLE_DIFFUSION, model_options={{}}):
    return _load_clip(ckpt_paths, embedding_directory, clip_type, dict(model_options, clip_h_model_config=SMALL))


comfy.sd.load_clip = load_clip
NODE_CLASS_MAPPINGS = {{}}
""".format(w=WIDTH, w2=2 * WIDTH)


class TinyClipServer(ComfyServer):
    """A ComfyUI server whose CLIP-H is built at the tiny width (a test custom node beside the pack)."""

    def _make_base(self) -> None:
        super()._make_base()
        shim = self.base / "custom_nodes" / "arsample_test_tiny_clip_h"
        shim.mkdir()
        (shim / "__init__.py").write_text(SHIM)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, run_pack_script) -> tuple[Path, dict]:
    """The models folder (written in the ComfyUI venv) and the library's tokens, entropies and images."""
    work = tmp_path_factory.mktemp("meissonic_comfy")
    cases = {name: dict(case, prompt=PROMPT, cfg=9.0) for name, case in CASES.items()}
    run_pack_script(SETUP, work, GOLDEN, json.dumps(cases), WIDTH, CLIP)
    return work, json.loads((work / "reference.json").read_text())


@pytest.fixture(scope="module")
def reference(setup) -> dict:
    return setup[1]


@pytest.fixture(scope="module")
def server(setup):
    """Its own server: the tiny Meissonic folder in its models folder, the tiny-CLIP custom node, fp32 CLIP."""
    cache = cache_dir()
    tree = comfyui_tree(cache)
    python = comfyui_python(cache, tree)
    comfy = TinyClipServer(python, tree, PACK_DIR, models_dir=setup[0] / "models", extra_args=["--fp32-text-enc"])
    comfy.start()
    try:
        yield comfy
    finally:
        comfy.stop()


def _prompt(tag: str, case: dict, *, model: str = TRANSFORMER, vq: str = VQ, seed: int | None = None) -> dict:
    """Loaders + Load CLIP → Text Condition (CLIP) → Masked Sampling (+ Entropy Temperature) → AR Sample → tokens as
    text, decode, entropy map, both saved."""
    runner = {"model": ["1", 0], "conditioning": ["4", 0], "sampler": ["5", 0], "vq": ["2", 0],
              "seed": case["seed"] if seed is None else seed, "cfg": 9.0, "top_k": 0, "top_p": 1.0,
              "temperature": 1.0, "cfg_interval": -1, "preview": True}
    if case["temperature"]:
        runner["entropy_temperature"] = ["6", 0]
    return {
        "1": {"class_type": "ARsampleModelLoader", "inputs": {"ckpt_name": model, "weight_dtype": "fp32",
                                                              "image_size": "256"}},
        "2": {"class_type": "ARsampleVQLoader", "inputs": {"vq_name": vq, "weight_dtype": "fp32"}},
        "3": {"class_type": "CLIPLoader", "inputs": {"clip_name": CLIP, "type": "stable_diffusion"}},
        "4": {"class_type": "ARsampleClipTextCondition",
              "inputs": {"model": ["1", 0], "clip": ["3", 0], "prompt": PROMPT, "batch_size": case["batch"],
                         "negative_prompt": case["negative"]}},
        "5": {"class_type": "ARsampleMaskedSampling",
              "inputs": dict(case["widgets"], prob=case["prob"], masking=case["masking"])},
        "6": {"class_type": "ARsampleEntropyTemperature", "inputs": dict(TEMPERATURE)},
        "7": {"class_type": "ARsampleSample", "inputs": runner},
        "8": {"class_type": "PreviewAny", "inputs": {"source": ["7", 0]}},
        "9": {"class_type": "ARsampleVQDecode", "inputs": {"vq": ["2", 0], "tokens": ["7", 0]}},
        "10": {"class_type": "ARsampleEntropyMap", "inputs": {"tokens": ["7", 0], "image": ["9", 0], "overlay": 0.5,
                                                              "max_entropy": 0.0}},
        "11": {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": f"{tag}/img"}},
        "12": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": f"{tag}/map"}},
    }


def _tensor(text: str, field: str) -> list:
    """A tensor field of the AR_TOKENS value as 'Preview as Text' shows it (the dataclass repr)."""
    match = re.search(field + r"=tensor\((\[.*?\])\)", text, re.DOTALL)
    assert match, f"no {field}=tensor(...) in the previewed AR_TOKENS: {text[:300]}"
    return json.loads(match.group(1))


@pytest.fixture(scope="module")
def runs(server) -> dict:
    out = {}
    for name, case in CASES.items():
        entry = server.run(_prompt(f"meissonic_{name}", case))
        text = entry["outputs"]["8"]["text"][0]
        out[name] = {"entry": entry, "tokens": _tensor(text, "tokens"), "entropy": _tensor(text, "entropy"),
                     "images": server.node_images(entry)}
    return out


def _options(server, node: str, name: str) -> list:
    spec = server.object_info(node)[node]["input"]["required"][name]
    return spec[0] if isinstance(spec[0], list) else spec[1]["options"]  # a V1 combo, or a V3 one


def test_the_folder_is_offered_by_both_loaders(server, reference):
    models = _options(server, "ARsampleModelLoader", "ckpt_name")
    assert TRANSFORMER in models and "embedded:tiny" in models
    vqs = _options(server, "ARsampleVQLoader", "vq_name")
    assert VQ in vqs and "embedded:tiny" in vqs  # offered from models/autoregressive/, nothing copied to models/vq/
    assert not [v for v in vqs if "transformer" in v or "text_encoder" in v]
    assert CLIP in _options(server, "CLIPLoader", "clip_name")
    assert reference["families"] == ["meissonic", "meissonic"] and reference["grid"] == [16, 16]
    assert reference["prompt"] == ["clip", "meissonic", WIDTH]


@pytest.mark.parametrize("name", list(CASES))
def test_the_nodes_give_the_library_tokens_entropies_and_images(runs, reference, name):
    run, ref = runs[name], reference[name]
    batch = CASES[name]["batch"]
    assert len(run["tokens"]) == batch and all(len(t) == 256 for t in run["tokens"])
    assert run["tokens"] == ref["tokens"]
    assert np.allclose(run["entropy"], ref["entropy"], atol=1e-3)  # printed to 4 decimals
    stats = run["entry"]["outputs"]["7"]["text"][0]
    assert stats.split(":")[0] == CASES[name]["sampler"]
    assert f"{ref['passes']} forward passes" in stats and ref["passes"] == CASES[name]["widgets"]["steps"]
    images = run["images"]["11"]
    assert len(images) == batch and all(img.shape == (32, 32, 3) for img in images)
    for got, want in zip(images, ref["pixels"]):
        assert int(np.abs(got.astype(int) - np.asarray(want, dtype=int)).max()) <= 1
    maps = run["images"]["12"]
    assert len(maps) == batch and all(m.shape == (32, 32, 3) for m in maps)


def test_the_switches_and_the_negative_prompt_change_the_tokens(runs):
    """Same seed: plain (empty negative prompt) vs '+Prob.' (the README's) vs '+Masking'."""
    tokens = {name: runs[name]["tokens"][0] for name in ("plain", "prob", "masking")}
    assert tokens["plain"] != tokens["prob"] and tokens["prob"] != tokens["masking"]


def _error(server, prompt: dict) -> dict:
    err = execution_error(server.run(prompt, check=False))
    assert err is not None, "the prompt should have failed"
    message = err["exception_message"]
    assert "Traceback" not in message and "\n" not in message.strip()
    return err


def _ok(server, tag: str) -> None:
    """The server still answers and runs the Meissonic prompt (a new seed, so nothing comes from the cache)."""
    assert server.get("/system_stats")["system"]
    entry = server.run(_prompt(f"after_{tag}", CASES["both"], seed=1000 + sum(map(ord, tag))))
    assert entry["status"]["status_str"] == "success"
    assert len(server.node_images(entry)["11"]) == 2


def test_a_class_condition_for_the_text_model_is_refused(server):
    prompt = _prompt("classes_on_meissonic", CASES["plain"])
    prompt["4"] = {"class_type": "ARsampleClassCondition", "inputs": {"model": ["1", 0], "classes": "1",
                                                                      "batch_size": 1}}
    err = _error(server, prompt)
    assert err["node_type"] == "ARsampleClassCondition", err
    message = err["exception_message"]
    assert "text-to-image model" in message and "not classes" in message, message
    _ok(server, "classes_on_meissonic")


def test_the_meissonic_vq_with_a_llamagen_model_is_refused(server):
    prompt = _prompt("meissonic_vq_on_llamagen", CASES["plain"], model="embedded:tiny")
    prompt["4"] = {"class_type": "ARsampleClassCondition", "inputs": {"model": ["1", 0], "classes": "circle",
                                                                      "batch_size": 1}}
    prompt["5"] = {"class_type": "ARsampleNextTokenSampling", "inputs": {}}
    err = _error(server, prompt)
    assert err["node_type"] == "ARsampleSample", err
    message = err["exception_message"]
    assert "is a Meissonic tokenizer but the tokens come from a LlamaGen model" in message, message
    _ok(server, "meissonic_vq_on_llamagen")


def test_a_llamagen_vq_with_the_meissonic_model_is_refused(server):
    err = _error(server, _prompt("llamagen_vq_on_meissonic", CASES["plain"], vq="embedded:tiny"))
    assert err["node_type"] == "ARsampleSample", err
    message = err["exception_message"]
    assert "predicts 64 token ids" in message and "128 codes" in message and "vqvae/" in message, message
    _ok(server, "llamagen_vq_on_meissonic")


def test_a_folder_without_its_vqvae_is_a_clear_error(server):
    assert NO_VQ not in _options(server, "ARsampleVQLoader", "vq_name")  # nothing to offer: a saved workflow's name
    prompt = _prompt("no_vqvae", CASES["plain"], model=NO_VQ.replace("vqvae", "transformer"), vq=NO_VQ)
    err = _error(server, prompt)
    assert err["node_type"] == "ARsampleVQLoader" and err["exception_type"].endswith("CheckpointError"), err
    message = err["exception_message"]
    for words in (f"'{NO_VQ}'", "vq_name", "models/autoregressive/MeissonicNoVQ/ has no vqvae/",
                  "huggingface.co/MeissonFlow/Meissonic", "press R"):
        assert words in message, message
    prompt = _prompt("no_folder", CASES["plain"], vq="Gone/vqvae/diffusion_pytorch_model.safetensors")
    message = _error(server, prompt)["exception_message"]
    assert "there is no models/autoregressive/Gone/" in message and "transformer/ and vqvae/" in message, message
    _ok(server, "no_vqvae")


@pytest.mark.parametrize("entry,words", [
    (VQ, ["vqvae/ part of a model folder", "'Load VQ Tokenizer' (vq_name)", TRANSFORMER]),
    (TEXT_ENCODER, ["text_encoder/ part of a model folder", "'Load CLIP' (type stable_diffusion)",
                    "models/text_encoders/", TRANSFORMER]),
])
def test_the_folders_other_parts_in_the_model_loader_are_refused(server, entry, words):
    assert entry in _options(server, "ARsampleModelLoader", "ckpt_name")  # ComfyUI lists every file of the folder
    err = _error(server, _prompt(f"part_{entry.split('/')[1]}", CASES["plain"], model=entry))
    assert err["node_type"] == "ARsampleModelLoader" and err["exception_type"].endswith("CheckpointError"), err
    for word in words:
        assert word in err["exception_message"], err["exception_message"]
    _ok(server, f"part_{entry.split('/')[1]}")


def test_the_shipped_workflow_runs_on_the_tiny_folder(server):
    """The Meissonic workflow as shipped (1024 px, 48 steps, guidance 9, the reference negative prompt): a 64×64
    grid per row, decoded by the tiny VQ to 128×128 pictures."""
    raw = json.loads(WORKFLOW.read_text())
    prompt = ui_to_api(raw, server.object_info())
    names = {p["class_type"]: p["inputs"] for p in prompt.values()}
    assert names["ARsampleModelLoader"]["ckpt_name"] == TRANSFORMER  # offered here: kept by the converter
    assert names["ARsampleVQLoader"]["vq_name"] == VQ
    assert names["CLIPLoader"]["clip_name"] == TEXT_ENCODER
    entry = server.run(prompt, timeout=600)
    images = server.node_images(entry)
    saved = [nid for nid, p in prompt.items() if p["class_type"] == "SaveImage"]
    assert len(saved) == 4
    for nid in saved:
        assert len(images[nid]) == 1 and images[nid][0].shape == (128, 128, 3)
    runners = [nid for nid, p in prompt.items() if p["class_type"] == "ARsampleSample"]
    stats = [entry["outputs"][nid]["text"][0] for nid in runners]
    assert sorted(s.split(":")[0] for s in stats) == sorted(["masked", "masked-prob", "masked-masking",
                                                            "masked-prob-masking"])
    assert all("48 forward passes" in s for s in stats), stats
