"""`arsample decode`: turn saved tokens back into an image, with the tokenizer of any registered family."""

from __future__ import annotations

import numpy as np
import torch

from .. import imaging
from ..errors import ARSampleError
from ..models.registry import load_tokenizer
from ..outputs import OutputPlan
from ..samplers import TokenLayout
from .common import pick_device


def register(sub) -> None:
    p = sub.add_parser("decode", help="decode a tokens .npy file with a VQ tokenizer")
    p.add_argument("--vq", required=True, help="VQ tokenizer checkpoint")
    p.add_argument("--tokens", required=True, help=".npy int array [batch, tokens] (or [tokens])")
    p.add_argument("--out", required=True, help="PNG: one image, or a horizontal strip for several")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.set_defaults(run=run)


def load_tokens(path: str) -> torch.Tensor:
    """Read an integer token array from .npy (no pickles) as (batch, tokens) int64."""
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ARSampleError(f"Tokens file not found: '{path}'.") from None
    except (ValueError, OSError) as exc:
        raise ARSampleError(f"Cannot read '{path}' as a .npy array ({exc}).") from exc
    if not np.issubdtype(array.dtype, np.integer):
        raise ARSampleError(f"'{path}' holds {array.dtype} values; token ids must be integers.")
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2:
        raise ARSampleError(f"'{path}' has shape {array.shape}; expected [batch, tokens].")
    return torch.from_numpy(array.astype(np.int64))


def run(args) -> int:
    out = args.out
    plan = OutputPlan(outputs={"--out": out}, inputs={"--vq": args.vq, "--tokens": args.tokens}).check()
    tokens = load_tokens(args.tokens)
    tokenizer = load_tokenizer(args.vq, device=pick_device(args.device))
    layout = TokenLayout(tokenizer.family.layout_for(tokens.shape[1]))
    images = imaging.to_uint8(tokenizer.family.decode(tokenizer.module, tokens, layout))
    with plan.writing():
        imaging.save_png(imaging.make_grid(images, columns=len(images), pad=0), out)
    print(f"wrote {out} ({len(images)} image{'s' if len(images) > 1 else ''}, {images.shape[2]}x{images.shape[1]})")
    return 0
