"""Regenerate the example workflows in workflows/ from a live ComfyUI's /object_info.

    python tests/make_workflows.py            # starts the test ComfyUI, writes workflows/*.json
    python tests/make_workflows.py NAME ...   # only these workflows (and their own thumbnails)

The graphs are described here once; tests/comfyui/ runs every shipped workflow
in a real ComfyUI, so a file that drifts from the nodes fails there.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from workflow_builder import Node, build

from arsample.models.meissonic_text import MEISSONIC_NEGATIVE_PROMPT

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"

HF = "https://huggingface.co/FoundationVision/LlamaGen/resolve/main/"
HF_T2I = "https://huggingface.co/peizesun/llamagen_t2i/resolve/main/"
LLAMAGEN_MODELS = {
    "c2i_L_384.pt": {"name": "c2i_L_384.pt", "url": HF + "c2i_L_384.pt", "directory": "autoregressive"},
    "vq_ds16_c2i.pt": {"name": "vq_ds16_c2i.pt", "url": HF + "vq_ds16_c2i.pt", "directory": "vq"},
    "t2i_XL_stage1_256.pt": {"name": "t2i_XL_stage1_256.pt", "url": HF_T2I + "t2i_XL_stage1_256.pt",
                             "directory": "autoregressive"},
    "vq_ds16_t2i.pt": {"name": "vq_ds16_t2i.pt", "url": HF_T2I + "vq_ds16_t2i.pt", "directory": "vq"},
}
T2I_PROMPT = "A blue Porsche 356 parked in front of a yellow brick wall."
T2I_NOTE = """## Text-to-image with LlamaGen-XL (stage 1, 256 px)

Models (the loaders offer the downloads when a file is missing):

* `models/autoregressive/t2i_XL_stage1_256.pt` and `models/vq/vq_ds16_t2i.pt` from
  [peizesun/llamagen_t2i](https://huggingface.co/peizesun/llamagen_t2i)
* `models/text_encoders/flan-t5-xl/`: the [google/flan-t5-xl](https://huggingface.co/google/flan-t5-xl)
  folder as downloaded, e.g. `huggingface-cli download google/flan-t5-xl --local-dir
  ComfyUI/models/text_encoders/flan-t5-xl` (only the encoder is read), or one `.safetensors` of the
  encoder (`arsample convert-t5`).

Every sampler row uses the same seed and settings (cfg 7.5, top-k 1000 as the LlamaGen demo).
For the 512 px stage-2 model, load `t2i_XL_stage2_512.pt` instead.
"""


VAR_HF = "https://huggingface.co/FoundationVision/var/resolve/main/"
VAR_MODELS = {
    "var_d16.pth": {"name": "var_d16.pth", "url": VAR_HF + "var_d16.pth", "directory": "autoregressive"},
    "vae_ch160v4096z32.pth": {"name": "vae_ch160v4096z32.pth", "url": VAR_HF + "vae_ch160v4096z32.pth",
                              "directory": "vq"},
}
VAR_NOTE = """## Class-to-image with VAR-d16 (next-scale, 256 px)

Models (the loaders offer the downloads when a file is missing), from
[FoundationVision/var](https://huggingface.co/FoundationVision/var):

* `models/autoregressive/var_d16.pth` (310 M parameters; d20, d24, d30 load the same way)
* `models/vq/vae_ch160v4096z32.pth` (VAR's multi-scale VQ-VAE, shared by every depth)

Every row uses the same seed and settings: cfg 4 (VAR's demo; guidance ramps up over the 10 scales),
top-k 900, top-p 0.95 as the VAR demo. Rows: plain, '+Prob.' (the entropy temperature per token, the
paper's scale-wise preset), '+Scale-wise' (a per-scale factor on the temperature, β 0.3) and both.
"""

STAR_NOTE = """## Text-to-image with STAR (next-scale, 256 px)

Models (we have not verified the file names of the STAR repository; the loaders list what you put there):

* `models/autoregressive/`: a STAR checkpoint from [taocrayon/STAR](https://huggingface.co/taocrayon/STAR)
  (star-256, depth 16 or 30, as released: a training snapshot, loaded as it is)
* `models/vq/vae_ch160v4096z32.pth`: VAR's VQ-VAE, from
  [FoundationVision/var](https://huggingface.co/FoundationVision/var)
* `models/text_encoders/`: the Stable Diffusion 2.x text encoder (CLIP ViT-H/14), e.g. `text_encoder/model.safetensors`
  of the Stable Diffusion 2.1 repository saved as `sd2.1_text_encoder.safetensors`; ComfyUI's own
  'Load CLIP' reads it (type stable_diffusion)

Every row uses the same seed and settings: cfg 4.5, top-k 600, top-p 0.8 (the reference's `sample.py`). Rows:
plain, '+Prob.' (the entropy temperature per token, the paper's STAR preset), '+Scale-wise' and both.
"""

MEISSONIC = "Meissonic/"  # the folder as downloaded, in models/autoregressive/ (and its text encoder in text_encoders/)
MEISSONIC_NOTE = """## Text-to-image with Meissonic (masked decoding, 1024 px)

Models, from [MeissonFlow/Meissonic](https://huggingface.co/MeissonFlow/Meissonic) (the folder as downloaded):

* `models/autoregressive/Meissonic/`: its `transformer/` and `vqvae/` folders (each
  `diffusion_pytorch_model.safetensors` + `config.json`), e.g. `huggingface-cli download MeissonFlow/Meissonic
  --include "transformer/*" "vqvae/*" --local-dir ComfyUI/models/autoregressive/Meissonic`. 'Load AR Model' takes
  `Meissonic/transformer/diffusion_pytorch_model.safetensors`, 'Load VQ Tokenizer' lists
  `Meissonic/vqvae/diffusion_pytorch_model.safetensors` from there (nothing to copy into `models/vq/`).
* `models/text_encoders/`: its `text_encoder/model.safetensors` (CLIP ViT-H/14 with its projection), e.g.
  `huggingface-cli download MeissonFlow/Meissonic --include "text_encoder/*" --local-dir
  ComfyUI/models/text_encoders/Meissonic`; ComfyUI's own 'Load CLIP' reads it (type stable_diffusion).

Every row uses the same seed and settings: 48 steps (Meissonic's pipeline at 1024 px), guidance 9, no top-k, the
negative prompt of Meissonic's README. Rows: plain (MaskGIT / Meissonic's scheduler), '+Prob.' (the entropy
temperature on the token logits, the paper's Meissonic preset), '+Masking' (on the re-masking) and both.
"""

JANUS = "Janus-Pro-1B/"  # the folder as downloaded, in models/autoregressive/ (or models/Janus-Pro/): model and VQ
JANUS_NOTE = """## Text-to-image with Janus-Pro-1B (next-token, 384 px)

Model: the [deepseek-ai/Janus-Pro-1B](https://huggingface.co/deepseek-ai/Janus-Pro-1B) folder as downloaded
(`config.json`, `tokenizer.json`, `pytorch_model.bin`), e.g.
`huggingface-cli download deepseek-ai/Janus-Pro-1B --local-dir ComfyUI/models/autoregressive/Janus-Pro-1B`.
Both loaders list it once as `Janus-Pro-1B/` (its VQ is inside: nothing goes in `models/vq/`); a folder already in
`models/Janus-Pro/` (the ComfyUI-Janus-Pro pack's) is listed too. No text encoder: 'Text Condition (Janus-Pro)'
tokenises the prompt with the folder's tokenizer. For
[Janus-Pro-7B](https://huggingface.co/deepseek-ai/Janus-Pro-7B) download that folder and pick it in both loaders.

Every sampler row uses the same seed and the reference's settings: cfg 5, temperature 1, no top-k, 384 px
(image size 'auto': 24×24 = 576 tokens). The entropy rows use the LlamaGen preset (Janus-Pro samples the same
VQ-16 tokens; the paper gives no Janus-Pro values).
"""

# Per sampler row: title, the decoding-method node it takes (the shared method node of the order, or its
# own node of the order's row type with these widgets), whether it takes the shared 'Entropy Temperature'.
ROWS = {
    "next-token": [
        ("Plain (LlamaGen)", None, False),
        ("Entropy temperature", None, True),
        ("SJD, exact acceptance (lossless)", {"acceptance": "exact (lossless)", "window": 16}, False),
        ("SJD, entropy acceptance (lossy)", {"acceptance": "entropy (lossy, paper rule)", "window": 16}, False),
        ("Coupled SJD, exact (lossless)", {"acceptance": "exact (lossless)", "window": 16, "coupled": True}, False),
    ],
    "next-scale": [
        ("Plain (VAR)", None, False),
        ("+Prob. (entropy temperature)", None, True),
        ("+Scale-wise (centered-normalized)", {"scale_temperature": "centered-normalized", "beta": 0.3}, False),
        ("+Prob. +Scale-wise (centered-normalized)", {"scale_temperature": "centered-normalized", "beta": 0.3},
         True),
        ("+Prob. +Scale-wise (centered)", {"scale_temperature": "centered", "beta": 0.3}, True),
    ],
    # masked: every row its own 'Masked Sampling' with the switches set (they act only with the temperature)
    "masked": [
        ("Plain (MaskGIT / aMUSEd)", {"prob": False, "masking": False}, False),
        ("+Prob. (entropy temperature on the logits)", {"prob": True, "masking": False}, True),
        ("+Masking (entropy temperature on the re-masking)", {"prob": False, "masking": True}, True),
        ("+Prob. +Masking (both)", {"prob": True, "masking": True}, True),
    ],
}
# The shared method node of each order (None: every row has its own), and the node type of a row's own method.
METHOD_NODES = {"next-token": ("ARsampleNextTokenSampling", "ARsampleSpeculativeJacobi"),
                "next-scale": ("ARsampleNextScaleSampling", "ARsampleNextScaleSampling"),
                "masked": (None, "ARsampleMaskedSampling")}
SAMPLER_ROWS = ROWS["next-token"]
NEXT_TOKEN, TEMPERATURE = 6, 7  # ids of the shared option nodes (the order's method, the entropy temperature)
ROW_HEIGHT = 560
COLOURS = ["#3f789e", "#a1309b", "#8a8a2a", "#b06634", "#2a8a5a"]


def inputs_column(model, vq, classes, prompt, t5, model_props, vq_props, note, entropy_preset,
                  order: str = "next-token", clip: str | None = None, model_widgets: dict | None = None,
                  negative_prompt: str | None = None, own_text: bool = False) -> list[Node]:
    """Loaders, the condition (class or text: T5, CLIP, or the model's own tokenizer), the note, and the shared
    option nodes."""
    shared = METHOD_NODES[order][0]
    # with no shared method node the rows' own ones fill that column: the temperature goes under the condition
    # (under a text condition's taller column when there is one), the note under it
    temperature_at, note_at = (380, ROW_HEIGHT), (0, 720)
    if not shared:
        temperature_at, note_at = ((0, 460), (0, 720)) if prompt is None else ((0, 800), (0, 1080))
    nodes = [
        Node(1, "ARsampleModelLoader", (0, 0), {"ckpt_name": model, **(model_widgets or {})}, size=(320, 110),
             properties={"models": [model_props]} if model_props else {}),
        Node(2, "ARsampleVQLoader", (0, 160), {"vq_name": vq}, size=(320, 90),
             properties={"models": [vq_props]} if vq_props else {}),
        *([Node(NEXT_TOKEN, shared, (380, 0), {}, size=(280, 50 if order == "next-token" else 130))] if shared else []),
        Node(TEMPERATURE, "ARsampleEntropyTemperature", temperature_at,
             {"preset": entropy_preset}, size=(280 if shared else 320, 250)),
    ]
    if prompt is None:
        nodes.append(Node(3, "ARsampleClassCondition", (0, 300), {"classes": classes, "batch_size": 1},
                          {"model": (1, 0)}, size=(320, 110)))
    elif own_text:  # Janus-Pro: the model tokenises the prompt itself, no text encoder
        nodes.append(Node(3, "ARsampleJanusTextCondition", (0, 300), {"prompt": prompt, "batch_size": 1},
                          {"model": (1, 0)}, size=(320, 220)))
    elif clip is not None:  # STAR, Meissonic: ComfyUI's own CLIP loader on the model's CLIP ViT-H/14 text encoder
        widgets = {"prompt": prompt, "batch_size": 1}
        if negative_prompt is not None:
            widgets["negative_prompt"] = negative_prompt
        nodes += [
            Node(4, "CLIPLoader", (0, 300), {"clip_name": clip, "type": "stable_diffusion"}, size=(320, 110)),
            Node(3, "ARsampleClipTextCondition", (0, 460), widgets, {"model": (1, 0), "clip": (4, 0)},
                 size=(320, 300 if negative_prompt is not None else 220)),
        ]
    else:
        nodes += [
            Node(4, "ARsampleT5Loader", (0, 300), {"t5_name": t5}, size=(320, 90)),
            Node(3, "ARsampleTextCondition", (0, 440), {"prompt": prompt, "batch_size": 1},
                 {"model": (1, 0), "text_encoder": (4, 0)}, size=(320, 220)),
        ]
    if note:
        nodes.append(Node(5, "MarkdownNote", note_at, {"text": note}, title="Models and settings", size=(340, 420)))
    return nodes


def _slug(title: str) -> str:
    if title.startswith("+"):  # next-scale rows: '+Prob. +Scale-wise (centered)' → 'prob_scalewise_centered'
        return "_".join(w.strip("+.()").lower().replace("-", "") for w in title.split()
                        if w.startswith("+") or w.startswith("(c"))
    slug = title.split(",")[0].split(" (")[0].lower().replace(" ", "_")
    if "exact" in title or "entropy acceptance" in title:
        slug += "_exact" if "exact" in title else "_entropy"
    return slug


def sampler_row(r: int, common: dict, prefix: str, upscale: int | None,
                order: str = "next-token", method_widgets: dict | None = None) -> tuple[list[Node], dict]:
    """One sampler row: its method (shared or own) → 'AR Sample' → decode + entropy map (enlarged) → save/preview.
    ``method_widgets``: more widgets of the row's own method node (e.g. the masked steps)."""
    title, sjd, entropy = ROWS[order][r]
    if sjd is not None and method_widgets:
        sjd = {**method_widgets, **sjd}
    y, base = r * ROW_HEIGHT, 10 + 10 * r
    method = NEXT_TOKEN if sjd is None else base + 6
    links = {"model": (1, 0), "conditioning": (3, 0), "sampler": (method, 0), "vq": (2, 0)}
    if entropy:
        links["entropy_temperature"] = (TEMPERATURE, 0)
    image, heat = (base + 1, 0), (base + 2, 0)
    nodes = [
        Node(base, "ARsampleSample", (720, y), common, links, title=title, size=(330, 380)),
        Node(base + 1, "ARsampleVQDecode", (1090, y), {}, {"vq": (2, 0), "tokens": (base, 0)}, size=(220, 60)),
        Node(base + 2, "ARsampleEntropyMap", (1090, y + 100), {"overlay": 0.0, "max_entropy": 0.0},
             {"tokens": (base, 0), "image": (base + 1, 0)}, size=(240, 110)),
        Node(base + 5, "PreviewAny", (1090, y + 260), {}, {"source": (base, 1)}, title=f"{title}: stats",
             size=(260, 120)),
    ]
    if sjd is not None:
        nodes.append(Node(base + 6, METHOD_NODES[order][1], (380, y), sjd,
                          title=title.split(",")[0] + " options", size=(280, 200 if order == "masked" else 150)))
    if upscale:  # tiny images: enlarge them (nearest neighbour, so every token stays a crisp block)
        scale = {"upscale_method": "nearest-exact", "scale_by": float(upscale)}
        nodes += [Node(base + 7, "ImageScaleBy", (1360, y), scale, {"image": image}, title="Enlarge images",
                       size=(240, 90)),
                  Node(base + 8, "ImageScaleBy", (1360, y + 140), scale, {"image": heat}, title="Enlarge maps",
                       size=(240, 90))]
        image, heat = (base + 7, 0), (base + 8, 0)
    nodes += [
        Node(base + 3, "SaveImage", (1640, y), {"filename_prefix": f"{prefix}/{_slug(title)}"}, {"images": image},
             title=f"{title}: images", size=(330, 330)),
        Node(base + 4, "PreviewImage", (2000, y), {}, {"images": heat}, title=f"{title}: entropy map",
             size=(330, 330)),
    ]
    group = {"id": r + 1, "title": title + " — same seed", "bounding": [710, y - 40, 1640, ROW_HEIGHT - 30],
             "color": COLOURS[r], "font_size": 20, "flags": {}}
    return nodes, group


def comparison(model: str, vq: str, cfg: float, top_k: int, prefix: str, classes: str | None = None,
               prompt: str | None = None, t5: str = "flan-t5-xl/", model_props=None, vq_props=None,
               note: str | None = None, entropy_preset: str = "llamagen",
               upscale: int | None = None, order: str = "next-token",
               top_p: float = 1.0, clip: str | None = None, model_widgets: dict | None = None,
               negative_prompt: str | None = None, method_widgets: dict | None = None, own_text: bool = False
               ) -> tuple[list[Node], list[dict]]:
    """Loaders → condition; option nodes (methods, entropy temperature) → one 'AR Sample' per row (same seed)
    → decode, entropy map, save, stats."""
    common = {"seed": 0, "cfg": cfg, "top_k": top_k, "top_p": top_p, "temperature": 1.0, "cfg_interval": -1}
    nodes = inputs_column(model, vq, classes, prompt, t5, model_props, vq_props, note, entropy_preset, order, clip,
                          model_widgets, negative_prompt, own_text)
    groups = []
    for r in range(len(ROWS[order])):
        row, group = sampler_row(r, common, prefix, upscale, order, method_widgets)
        nodes += row
        groups.append(group)
    return nodes, groups


WORKFLOW_SPECS = {
    "ARsample_embedded_compare_samplers": dict(
        model="embedded:tiny", vq="embedded:tiny", classes="circle, ring, triangle, dots", cfg=2.0, top_k=16,
        prefix="ARsample/embedded", entropy_preset="embedded", upscale=8),
    "ARsample_llamagen_t2i_compare_samplers": dict(
        model="t2i_XL_stage1_256.pt", vq="vq_ds16_t2i.pt", prompt=T2I_PROMPT, cfg=7.5, top_k=1000,
        prefix="ARsample/llamagen_t2i", model_props=LLAMAGEN_MODELS["t2i_XL_stage1_256.pt"],
        vq_props=LLAMAGEN_MODELS["vq_ds16_t2i.pt"], note=T2I_NOTE),
    "ARsample_llamagen_c2i_compare_samplers": dict(
        model="c2i_L_384.pt", vq="vq_ds16_c2i.pt", classes="207, 360, 387, 974", cfg=4.0, top_k=2000,
        prefix="ARsample/llamagen_c2i", model_props=LLAMAGEN_MODELS["c2i_L_384.pt"],
        vq_props=LLAMAGEN_MODELS["vq_ds16_c2i.pt"]),
    "ARsample_embedded_var_compare_samplers": dict(
        model="embedded:tiny-var", vq="embedded:tiny-var", classes="circle, ring, triangle, dots", cfg=2.0, top_k=32,
        prefix="ARsample/embedded_var", entropy_preset="embedded-var", upscale=8, order="next-scale"),
    "ARsample_embedded_masked_compare_samplers": dict(
        model="embedded:tiny-masked", vq="embedded:tiny-masked", classes="circle, ring, triangle, dots", cfg=2.0,
        top_k=0, prefix="ARsample/embedded_masked", entropy_preset="embedded-masked", upscale=8, order="masked"),
    "ARsample_var_c2i_compare_samplers": dict(
        model="var_d16.pth", vq="vae_ch160v4096z32.pth", classes="207, 360, 387, 974", cfg=4.0, top_k=900,
        top_p=0.95, prefix="ARsample/var_c2i", model_props=VAR_MODELS["var_d16.pth"],
        vq_props=VAR_MODELS["vae_ch160v4096z32.pth"], note=VAR_NOTE, entropy_preset="star", order="next-scale"),
    "ARsample_star_t2i_compare_samplers": dict(
        model="STAR.pth", vq="vae_ch160v4096z32.pth", prompt=T2I_PROMPT, clip="sd2.1_text_encoder.safetensors",
        cfg=4.5, top_k=600, top_p=0.8, prefix="ARsample/star_t2i", vq_props=VAR_MODELS["vae_ch160v4096z32.pth"],
        note=STAR_NOTE, entropy_preset="star", order="next-scale"),
    "ARsample_meissonic_t2i_compare_samplers": dict(
        model=MEISSONIC + "transformer/diffusion_pytorch_model.safetensors",
        vq=MEISSONIC + "vqvae/diffusion_pytorch_model.safetensors", prompt=T2I_PROMPT,
        clip=MEISSONIC + "text_encoder/model.safetensors", negative_prompt=MEISSONIC_NEGATIVE_PROMPT,
        model_widgets={"image_size": "1024"}, method_widgets={"steps": 48}, cfg=9.0, top_k=0,
        prefix="ARsample/meissonic_t2i", note=MEISSONIC_NOTE, entropy_preset="meissonic", order="masked"),
    "ARsample_janus_pro_t2i_compare_samplers": dict(
        model=JANUS, vq=JANUS, prompt=T2I_PROMPT, own_text=True, model_widgets={"image_size": "auto"}, cfg=5.0,
        top_k=0, prefix="ARsample/janus_pro_t2i", note=JANUS_NOTE, entropy_preset="llamagen"),
}


def write_all(object_info: dict, out_dir: Path = WORKFLOWS, names: list[str] | None = None) -> list[Path]:
    """Every workflow (or the ``names`` given) as ``out_dir/NAME.json``."""
    out_dir.mkdir(exist_ok=True)
    written = []
    unknown = set(names or ()) - set(WORKFLOW_SPECS)
    if unknown:
        raise KeyError(f"unknown workflows {sorted(unknown)}; known: {', '.join(WORKFLOW_SPECS)}")
    for name, spec in WORKFLOW_SPECS.items():
        if names and name not in names:
            continue
        nodes, groups = comparison(**spec)
        path = out_dir / f"{name}.json"
        path.write_text(json.dumps(build(nodes, object_info, groups), indent=1) + "\n")
        written.append(path)
    return written


def write_thumbnails(out_dir: Path = WORKFLOWS) -> None:
    """Same-name .jpg thumbnails for the template browser."""
    from PIL import Image, ImageDraw

    from arsample.cli.demo import comparison_sheet
    from arsample.models.registry import MODEL, TOKENIZER, embedded_files, load_model, load_tokenizer
    from arsample.samplers import SamplerSettings, named_sampler

    _, files = embedded_files("tiny")
    model, tokenizer = load_model(files[MODEL], name="embedded:tiny"), load_tokenizer(files[TOKENIZER])
    base = SamplerSettings(cfg_scale=2.0, top_k=16)
    samplers = [named_sampler(n, base, "embedded") for n in ("plain", "entropy", "sjd", "sjd-entropy", "coupled")]
    sheet, _ = comparison_sheet(model, tokenizer, [0, 5, 2, 9], samplers, seed=0)
    img = Image.fromarray(sheet)
    img.thumbnail((640, 640))
    img.save(out_dir / "ARsample_embedded_compare_samplers.jpg", quality=90)

    from arsample.samplers import NextScale, NextScaleOptions, NamedSampler, ScaleTemperature

    _, files = embedded_files("tiny-var")
    model, tokenizer = load_model(files[MODEL], name="embedded:tiny-var"), load_tokenizer(files[TOKENIZER])
    base = SamplerSettings(cfg_scale=2.0, top_k=32)
    samplers = [named_sampler(n, base, "embedded-var")
                for n in ("scale", "scale-entropy", "scale-scalewise", "scale-entropy-scalewise")]
    centered = NextScale(NextScaleOptions(scale_temperature=ScaleTemperature("centered")))
    samplers.append(NamedSampler("scale-entropy-scalewise:centered", samplers[-1].settings, centered))
    sheet, _ = comparison_sheet(model, tokenizer, [0, 5, 2, 9], samplers, seed=0)
    img = Image.fromarray(sheet)
    img.thumbnail((640, 640))
    img.save(out_dir / "ARsample_embedded_var_compare_samplers.jpg", quality=90)

    write_masked_thumbnail(out_dir)

    card = Image.new("RGB", (640, 360), (24, 26, 32))
    draw = ImageDraw.Draw(card)
    lines = ["VAR c2i, next-scale (var_d16.pth + vae_ch160v4096z32.pth)", "",
             "plain  vs  +Prob. (entropy temperature)", "vs  +Scale-wise  vs  both (two scale-wise forms)", "",
             "same seed, side by side, with per-scale entropy maps", "",
             "models: huggingface.co/FoundationVision/var"]
    for i, line in enumerate(lines):
        draw.text((32, 40 + 32 * i), line, fill=(235, 235, 235))
    card.save(out_dir / "ARsample_var_c2i_compare_samplers.jpg", quality=90)

    card = Image.new("RGB", (640, 360), (24, 26, 32))
    draw = ImageDraw.Draw(card)
    lines = ["STAR t2i, next-scale (STAR + vae_ch160v4096z32.pth + SD 2.x CLIP)", "",
             "one prompt: plain  vs  +Prob. (entropy temperature)", "vs  +Scale-wise  vs  both", "",
             "same seed, side by side, with per-scale entropy maps", "",
             "models: huggingface.co/taocrayon/STAR", "         huggingface.co/FoundationVision/var"]
    for i, line in enumerate(lines):
        draw.text((32, 40 + 32 * i), line, fill=(235, 235, 235))
    card.save(out_dir / "ARsample_star_t2i_compare_samplers.jpg", quality=90)

    write_meissonic_thumbnail(out_dir)
    write_janus_thumbnail(out_dir)

    card = Image.new("RGB", (640, 360), (24, 26, 32))
    draw = ImageDraw.Draw(card)
    lines = ["LlamaGen c2i (c2i_L_384.pt + vq_ds16_c2i.pt)", "", "plain  vs  entropy temperature",
             "vs  SJD exact  vs  SJD entropy  vs  coupled SJD", "", "same seed, side by side, with entropy maps",
             "", "models: huggingface.co/FoundationVision/LlamaGen"]
    for i, line in enumerate(lines):
        draw.text((32, 40 + 32 * i), line, fill=(235, 235, 235))
    card.save(out_dir / "ARsample_llamagen_c2i_compare_samplers.jpg", quality=90)

    card = Image.new("RGB", (640, 360), (24, 26, 32))
    draw = ImageDraw.Draw(card)
    lines = ["LlamaGen t2i (t2i_XL_stage1_256.pt + vq_ds16_t2i.pt + FLAN-T5-XL)", "",
             "one prompt: plain  vs  entropy temperature", "vs  SJD exact  vs  SJD entropy  vs  coupled SJD", "",
             "same seed, side by side, with entropy maps", "", "models: huggingface.co/peizesun/llamagen_t2i",
             "         huggingface.co/google/flan-t5-xl"]
    for i, line in enumerate(lines):
        draw.text((32, 40 + 32 * i), line, fill=(235, 235, 235))
    card.save(out_dir / "ARsample_llamagen_t2i_compare_samplers.jpg", quality=90)


def write_meissonic_thumbnail(out_dir: Path = WORKFLOWS) -> None:
    """A card, as STAR's: the Meissonic workflow needs the released models."""
    from PIL import Image, ImageDraw

    card = Image.new("RGB", (640, 360), (24, 26, 32))
    draw = ImageDraw.Draw(card)
    lines = ["Meissonic t2i, masked decoding (Meissonic/ folder + its CLIP-H)", "",
             "one prompt, 1024 px, 48 steps: plain  vs  +Prob.", "vs  +Masking  vs  both (entropy temperature)", "",
             "same seed, side by side, with entropy maps", "",
             "models: huggingface.co/MeissonFlow/Meissonic"]
    for i, line in enumerate(lines):
        draw.text((32, 40 + 32 * i), line, fill=(235, 235, 235))
    card.save(out_dir / "ARsample_meissonic_t2i_compare_samplers.jpg", quality=90)


def write_janus_thumbnail(out_dir: Path = WORKFLOWS) -> None:
    """A card, as STAR's: the Janus-Pro workflow needs the released model."""
    from PIL import Image, ImageDraw

    card = Image.new("RGB", (640, 360), (24, 26, 32))
    draw = ImageDraw.Draw(card)
    lines = ["Janus-Pro t2i, next-token (the Janus-Pro-1B/ folder; no text encoder)", "",
             "one prompt, 384 px, cfg 5: plain  vs  entropy temperature",
             "vs  SJD exact  vs  SJD entropy  vs  coupled SJD", "", "same seed, side by side, with entropy maps", "",
             "models: huggingface.co/deepseek-ai/Janus-Pro-1B (or -7B)"]
    for i, line in enumerate(lines):
        draw.text((32, 40 + 32 * i), line, fill=(235, 235, 235))
    card.save(out_dir / "ARsample_janus_pro_t2i_compare_samplers.jpg", quality=90)


# workflows whose thumbnail has its own function (``python tests/make_workflows.py NAME`` writes only those)
THUMBNAILS = {"ARsample_meissonic_t2i_compare_samplers": write_meissonic_thumbnail,
              "ARsample_janus_pro_t2i_compare_samplers": write_janus_thumbnail}


def write_masked_thumbnail(out_dir: Path = WORKFLOWS) -> None:
    """The embedded masked model's four rows, as its workflow runs them (cfg 2, top-k 0, 16 steps, seed 0)."""
    from PIL import Image

    from arsample.cli.demo import comparison_sheet
    from arsample.models.registry import MODEL, TOKENIZER, embedded_files, load_model, load_tokenizer
    from arsample.samplers import MASKED_SAMPLER_NAMES, MaskedOptions, SamplerSettings, named_sampler

    _, files = embedded_files("tiny-masked")
    model, tokenizer = load_model(files[MODEL], name="embedded:tiny-masked"), load_tokenizer(files[TOKENIZER])
    base = SamplerSettings(cfg_scale=2.0, top_k=0)
    samplers = [named_sampler(n, base, "embedded-masked", masked=MaskedOptions(steps=16))
                for n in MASKED_SAMPLER_NAMES]  # masked, masked-prob, masked-masking, masked-prob-masking
    sheet, _ = comparison_sheet(model, tokenizer, [0, 5, 2, 9], samplers, seed=0)
    img = Image.fromarray(sheet)
    img.thumbnail((640, 640))
    img.save(out_dir / "ARsample_embedded_masked_compare_samplers.jpg", quality=90)


def main(names: list[str] | None = None) -> int:
    """Write every workflow and thumbnail, or only the ``names`` given (and those of their thumbnails that have
    their own function in THUMBNAILS)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from comfyui_env import cache_dir, comfyui_python, comfyui_tree
    from comfyui_server import ComfyServer

    cache = cache_dir()
    tree = comfyui_tree(cache)
    python = comfyui_python(cache, tree)
    with ComfyServer(python, tree, ROOT) as server:
        for path in write_all(server.object_info(), names=names):
            print("wrote", path)
    if not names:
        write_thumbnails()
    for name in names or ():
        if name in THUMBNAILS:
            THUMBNAILS[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
