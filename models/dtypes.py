"""Weight dtypes by name, shared by every model family and the text encoder."""

from __future__ import annotations

import torch

from ..errors import ConfigError

DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
          "fp16": torch.float16, "float16": torch.float16}


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """'fp32'/'bf16'/'fp16' (or a torch dtype) → torch dtype; None → float32."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise ConfigError(f"Unsupported weight dtype {dtype}; use fp32, bf16 or fp16.")
        return dtype
    try:
        return DTYPES[str(dtype).lower()]
    except KeyError:
        raise ConfigError(f"Unknown dtype '{dtype}'; use fp32, bf16 or fp16.") from None
