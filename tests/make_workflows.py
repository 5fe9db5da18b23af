"""Regenerate the example workflows in workflows/ from a live ComfyUI's /object_info.

    python tests/make_workflows.py            # starts the test ComfyUI, writes workflows/*.json

The graphs are described here once; tests/comfyui/ runs every shipped workflow
in a real ComfyUI, so a file that drifts from the nodes fails there.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from workflow_builder import Node, build

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"

HF = "https://huggingface.co/FoundationVision/LlamaGen/resolve/main/"
LLAMAGEN_MODELS = {
    "c2i_L_384.pt": {"name": "c2i_L_384.pt", "url": HF + "c2i_L_384.pt", "directory": "autoregressive"},
    "vq_ds16_c2i.pt": {"name": "vq_ds16_c2i.pt", "url": HF + "vq_ds16_c2i.pt", "directory": "vq"},
}


def comparison(model: str, vq: str, classes: str, cfg: float, top_k: int, prefix: str, model_props=None,
               vq_props=None, note: str = "") -> tuple[list[Node], list[dict]]:
    """Loader pair → class condition → plain and entropy samplers (same seed) → decode, entropy map, save."""
    common = {"seed": 0, "cfg": cfg, "top_k": top_k, "top_p": 1.0, "temperature": 1.0, "cfg_interval": -1}
    sampler_links = {"model": (1, 0), "conditioning": (3, 0), "vq": (2, 0)}
    nodes = [
        Node(1, "ARsampleModelLoader", (0, 0), {"ckpt_name": model}, size=(320, 110),
             properties={"models": [model_props]} if model_props else {}),
        Node(2, "ARsampleVQLoader", (0, 160), {"vq_name": vq}, size=(320, 90),
             properties={"models": [vq_props]} if vq_props else {}),
        Node(3, "ARsampleClassCondition", (0, 300), {"classes": classes, "batch_size": 1}, {"model": (1, 0)},
             size=(320, 110)),
        Node(4, "ARsampleSampler", (380, 0), common, sampler_links, title="Plain sampler (LlamaGen)",
             size=(330, 300)),
        Node(5, "ARsampleEntropySampler", (380, 380), {**common, "preset": "llamagen"}, sampler_links,
             title="Entropy-temperature sampler", size=(330, 480)),
        Node(6, "ARsampleVQDecode", (760, 0), {}, {"vq": (2, 0), "tokens": (4, 0)}, size=(220, 60)),
        Node(7, "ARsampleVQDecode", (760, 380), {}, {"vq": (2, 0), "tokens": (5, 0)}, size=(220, 60)),
        Node(8, "ARsampleEntropyMap", (760, 120), {"overlay": 0.0, "max_entropy": 0.0},
             {"tokens": (4, 0), "image": (6, 0)}, size=(240, 110)),
        Node(9, "ARsampleEntropyMap", (760, 500), {"overlay": 0.0, "max_entropy": 0.0},
             {"tokens": (5, 0), "image": (7, 0)}, size=(240, 110)),
        Node(10, "SaveImage", (1040, 0), {"filename_prefix": f"{prefix}/plain"}, {"images": (6, 0)},
             title="Plain", size=(300, 300)),
        Node(11, "SaveImage", (1040, 380), {"filename_prefix": f"{prefix}/entropy"}, {"images": (7, 0)},
             title="Entropy temperature", size=(300, 300)),
        Node(12, "PreviewImage", (1380, 0), {}, {"images": (8, 0)}, title="Plain: entropy map", size=(300, 300)),
        Node(13, "PreviewImage", (1380, 380), {}, {"images": (9, 0)}, title="Entropy sampler: entropy map",
             size=(300, 300)),
        Node(14, "PreviewAny", (380, 320), {}, {"source": (4, 1)}, title="Plain: stats", size=(330, 50)),
        Node(15, "PreviewAny", (380, 880), {}, {"source": (5, 1)}, title="Entropy: stats", size=(330, 50)),
    ]
    groups = [
        {"id": 1, "title": "Plain (LlamaGen)" + note, "bounding": [370, -40, 1330, 400], "color": "#3f789e",
         "font_size": 20, "flags": {}},
        {"id": 2, "title": "Entropy temperature (same seed)", "bounding": [370, 340, 1330, 600],
         "color": "#a1309b", "font_size": 20, "flags": {}},
    ]
    return nodes, groups


WORKFLOW_SPECS = {
    "ARsample_embedded_compare_samplers": dict(
        model="embedded:tiny", vq="embedded:tiny", classes="circle, ring, triangle, dots", cfg=3.0, top_k=0,
        prefix="ARsample/embedded"),
    "ARsample_llamagen_c2i_compare_samplers": dict(
        model="c2i_L_384.pt", vq="vq_ds16_c2i.pt", classes="207, 360, 387, 974", cfg=4.0, top_k=2000,
        prefix="ARsample/llamagen_c2i", model_props=LLAMAGEN_MODELS["c2i_L_384.pt"],
        vq_props=LLAMAGEN_MODELS["vq_ds16_c2i.pt"]),
}


def write_all(object_info: dict, out_dir: Path = WORKFLOWS) -> list[Path]:
    out_dir.mkdir(exist_ok=True)
    written = []
    for name, spec in WORKFLOW_SPECS.items():
        nodes, groups = comparison(**spec)
        path = out_dir / f"{name}.json"
        path.write_text(json.dumps(build(nodes, object_info, groups), indent=1) + "\n")
        written.append(path)
    return written


def main() -> int:
    sys.path.insert(0, str(Path(__file__).parent))
    from comfyui_env import ComfyServer, cache_dir, comfyui_python, comfyui_tree

    cache = cache_dir()
    tree = comfyui_tree(cache)
    python = comfyui_python(cache, tree)
    with ComfyServer(python, tree, ROOT) as server:
        for path in write_all(server.object_info()):
            print("wrote", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
