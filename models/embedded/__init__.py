"""The embedded default model: a tiny LlamaGen (VQ + c2i GPT) trained by us on procedural shapes.

It ships inside the pack (``weights/``), so everything runs and is tested with
no download. Load it by name: ``load_embedded("tiny")``. The data, trainer,
evaluator and benchmark that made and measure it are the CPU lab (``arsample.lab``).
"""

from __future__ import annotations

from pathlib import Path

from ...errors import CheckpointError
from ..registry import load_model, load_tokenizer

WEIGHTS = Path(__file__).parent / "weights"
# "evaluator" is the lab's shapes classifier (arsample.lab.evaluator), shipped beside the model it measures.
EMBEDDED_MODELS = {
    "tiny": {"gpt": WEIGHTS / "tiny_shapes_gpt.safetensors", "vq": WEIGHTS / "tiny_shapes_vq.safetensors",
             "evaluator": WEIGHTS / "tiny_shapes_evaluator.safetensors"},
}

# The tiny model's classes, in label order (label 10 is the null class used for guidance).
CLASS_NAMES = ("circle", "square", "triangle", "diamond", "plus", "ring", "frame", "x-cross", "bars", "dots")


def embedded_paths(name: str = "tiny") -> dict[str, Path]:
    """Paths of the embedded model's files (``gpt``, ``vq``, ``evaluator``)."""
    key = name.lower()
    if key not in EMBEDDED_MODELS:
        raise CheckpointError(f"Unknown embedded model '{name}'. Known: {', '.join(EMBEDDED_MODELS)}.")
    paths = EMBEDDED_MODELS[key]
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise CheckpointError(f"The embedded model's files are missing ({', '.join(missing)}); reinstall the pack "
                              f"or re-create them with 'arsample train'.")
    return paths


def load_embedded(name: str = "tiny", device="cpu", dtype="fp32"):
    """(gpt, vq) of an embedded model, loaded in ``dtype`` on ``device``."""
    paths = embedded_paths(name)
    gpt = load_model(paths["gpt"], dtype=dtype, device=device).module
    return gpt, load_tokenizer(paths["vq"], device=device).module
