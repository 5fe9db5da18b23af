"""The embedded models, trained by us on procedural shapes: a tiny LlamaGen ("tiny", VQ + c2i GPT, the
default), a tiny next-scale VAR ("tiny-var", multi-scale VQ-VAE + VAR transformer) and a tiny masked
Meissonic ("tiny-masked", Meissonic transformer + class table, decoded by the tiny LlamaGen's VQ).

They ship inside the pack (``weights/``), so everything runs and is tested with no download. Load one
by name: ``load_embedded("tiny")``. The data, trainers, evaluator and benchmark that made and measure
them are the CPU lab (``arsample.lab``); both are measured by the same shapes classifier.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import CheckpointError
from ..registry import MODEL, TOKENIZER, embedded_files, load_model, load_tokenizer

WEIGHTS = Path(__file__).parent / "weights"
# "evaluator" is the lab's shapes classifier (arsample.lab.evaluator), shipped beside the model it measures.
_EVALUATOR = WEIGHTS / "tiny_shapes_evaluator.safetensors"
EMBEDDED_MODELS = {
    "tiny": {"gpt": WEIGHTS / "tiny_shapes_gpt.safetensors", "vq": WEIGHTS / "tiny_shapes_vq.safetensors",
             "evaluator": _EVALUATOR},
    "tiny-var": {"var": WEIGHTS / "tiny_shapes_var.safetensors", "vqvae": WEIGHTS / "tiny_shapes_vqvae.safetensors",
                 "evaluator": _EVALUATOR},
    "tiny-masked": {"masked": WEIGHTS / "tiny_shapes_masked.safetensors", "vq": WEIGHTS / "tiny_shapes_vq.safetensors",
                    "evaluator": _EVALUATOR},
}
# The family (models/<family>/) of each embedded model; each family lists its own.
EMBEDDED_FAMILY = {"tiny": "llamagen", "tiny-var": "var", "tiny-masked": "meissonic"}

# The tiny model's classes, in label order (label 10 is the null class used for guidance).
CLASS_NAMES = ("circle", "square", "triangle", "diamond", "plus", "ring", "frame", "x-cross", "bars", "dots")


def embedded_names(family: str) -> tuple[str, ...]:
    """The embedded models of one family (``llamagen``: ('tiny',), ``var``: ('tiny-var',), ``meissonic``:
    ('tiny-masked',))."""
    return tuple(name for name, owner in EMBEDDED_FAMILY.items() if owner == family)


def embedded_paths(name: str = "tiny") -> dict[str, Path]:
    """Paths of the embedded model's files: ``gpt``/``vq`` (tiny), ``var``/``vqvae`` (tiny-var), ``masked``/``vq``
    (tiny-masked), ``evaluator``."""
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
    """(model, tokenizer) of an embedded model, the model in ``dtype`` on ``device``: (GPT, VQ) for
    ``tiny``, (VAR transformer, VQ-VAE) for ``tiny-var``, (Meissonic generator, VQ) for ``tiny-masked``."""
    _, files = embedded_files(name)
    model = load_model(files[MODEL], dtype=dtype, device=device).module
    return model, load_tokenizer(files[TOKENIZER], device=device).module
