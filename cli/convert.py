"""`arsample convert`: official .pt checkpoint → .safetensors with its config in the metadata."""

from __future__ import annotations

from pathlib import Path


from ..errors import ARSampleError
from ..models.checkpoint import read_checkpoint, save_safetensors_atomic
from ..models.llamagen import gpt_from_state_dict, parse_dtype, vq_from_state_dict
from ..models.llamagen.config import detect_kind
from .common import output_path


def register(sub) -> None:
    p = sub.add_parser("convert", help="convert a checkpoint to .safetensors (config stored in metadata)")
    p.add_argument("input", help="checkpoint to read (.pt or .safetensors)")
    p.add_argument("output", help=".safetensors file to write")
    p.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default=None,
                   help="cast floating-point weights (default: keep)")
    p.add_argument("--image-size", type=int, help="GPT only: training image size, if the file name does not say")
    p.add_argument("--n-head", type=int, help="GPT only: attention heads, if not a named size")
    p.set_defaults(run=run)


def run(args) -> int:
    src, dst = Path(args.input), output_path(args.output, "output")
    if dst.suffix.lower() != ".safetensors":
        raise ARSampleError(f"The output must end in .safetensors; got '{dst.name}'.")
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise ARSampleError("Input and output are the same file; choose another output name.")
    state, metadata = read_checkpoint(src)
    kind = detect_kind(state)
    if kind.startswith("gpt"):
        override = {k: v for k, v in (("image_size", args.image_size), ("n_head", args.n_head)) if v}
        model = gpt_from_state_dict(state, src.name, metadata, override=override)
    elif kind == "vq":
        model = vq_from_state_dict(state, src.name, metadata)
    else:
        raise ARSampleError(f"'{src.name}' is not a LlamaGen GPT or VQ checkpoint; nothing to convert.")
    dtype = parse_dtype(args.dtype) if args.dtype else None
    tensors = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v)
               for k, v in model.state_dict().items()}
    save_safetensors_atomic(tensors, dst, model.config.to_metadata())
    size = sum(v.numel() * v.element_size() for v in tensors.values()) / 1e6
    print(f"wrote {dst} ({kind}, {model.config.name or 'custom'}, {size:.1f} MB)")
    return 0
