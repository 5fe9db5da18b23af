"""`arsample convert`: official .pt checkpoint → .safetensors with its config in the metadata.

Also takes a T5 text encoder (a Hugging Face folder such as flan-t5-xl/, or a weights file) and
writes its encoder alone, one file, as ComfyUI users keep text encoders.
"""

from __future__ import annotations

from pathlib import Path


from ..errors import ARSampleError
from ..models.checkpoint import check_finite, save_safetensors_atomic
from ..models.dtypes import parse_dtype
from ..models.registry import MODEL, families, read_model_file, recognise
from ..outputs import OutputPlan


def register(sub) -> None:
    p = sub.add_parser("convert", help="convert a checkpoint to .safetensors (config stored in metadata)")
    p.add_argument("input", help="checkpoint to read (.pt or .safetensors), or a T5 folder (e.g. flan-t5-xl/)")
    p.add_argument("output", help=".safetensors file to write")
    p.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default=None,
                   help="cast floating-point weights (default: keep)")
    p.add_argument("--image-size", type=int, help="model only: training image size, if the file name does not say")
    p.add_argument("--n-head", type=int, help="model only: attention heads, if not a named size")
    p.set_defaults(run=run)


def run(args) -> int:
    src, dst = Path(args.input), Path(args.output)
    if dst.suffix.lower() != ".safetensors":
        raise ARSampleError(f"The output must end in .safetensors; got '{dst.name}'.")
    plan = OutputPlan(outputs={"output": args.output}, inputs={"input": args.input}).check()
    if src.is_dir() or _is_t5_file(src):
        return _convert_t5(src, dst, args.dtype, plan)
    state, metadata = read_model_file(src)
    model, kind = _build(state, metadata, src.name, args)
    dtype = parse_dtype(args.dtype) if args.dtype else None
    tensors = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v)
               for k, v in model.state_dict().items()}
    check_finite(tensors, dst.name)  # a cast to fp16 can overflow weights the source held fine
    with plan.writing():
        save_safetensors_atomic(tensors, dst, model.config.to_metadata())
    size = sum(v.numel() * v.element_size() for v in tensors.values()) / 1e6
    print(f"wrote {dst} ({kind}, {model.config.name or 'custom'}, {size:.1f} MB)")
    return 0


def _build(state, metadata, filename: str, args):
    """The model or tokenizer of ``state`` through its family's registry entry, and a word for what it is."""
    found = recognise(state, metadata)
    if found is None:
        titles = " or ".join(f"{f.title} model/tokenizer" for f in families().values())
        raise ARSampleError(f"'{filename}' is not a {titles} checkpoint; nothing to convert.")
    entry, role = found
    if role == MODEL:
        override = {k: v for k, v in (("image_size", args.image_size), ("n_head", args.n_head)) if v}
        model = entry.build_model(state, metadata, filename, dtype="fp32", device="cpu", override=override)
    else:
        if args.image_size or args.n_head:
            raise ARSampleError(f"--image-size and --n-head apply to models; '{filename}' is a {entry.title} "
                                f"tokenizer.")
        model = entry.build_tokenizer(state, metadata, filename, dtype="fp32", device="cpu")
    return model, f"{entry.title} {role}"


def _is_t5_file(path: Path) -> bool:
    if path.suffix.lower() != ".safetensors" or not path.is_file():
        return False
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return "shared.weight" in f.keys()
    except Exception:  # noqa: BLE001 - not readable as safetensors: read_model_file reports it
        return False


def _convert_t5(src: Path, dst: Path, dtype: str | None, plan: OutputPlan) -> int:
    """The T5 encoder of ``src`` (folder or file) → one .safetensors with its config in the metadata."""
    import dataclasses
    import json

    from ..models.t5 import read_t5_checked

    _, state, config = read_t5_checked(src)
    cast = parse_dtype(dtype) if dtype else None
    tensors = {k: (v.to(cast) if cast is not None and v.is_floating_point() else v).contiguous()
               for k, v in state.items()}
    check_finite(tensors, dst.name)
    with plan.writing():
        save_safetensors_atomic(tensors, dst, {"t5_config": json.dumps(dataclasses.asdict(config))})
    size = sum(v.numel() * v.element_size() for v in tensors.values()) / 1e6
    print(f"wrote {dst} (T5 encoder, {config.num_layers} layers, width {config.d_model}, {size:.1f} MB)")
    return 0
