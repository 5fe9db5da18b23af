"""The model configuration that ``arsample convert`` stores in a safetensors header (every family)."""

from __future__ import annotations

import json
from typing import Mapping

from ..errors import ConfigError

METADATA_KEY = "arsample_config"  # the key every family's converted files carry


def config_metadata(kind: str, fields: dict) -> dict[str, str]:
    """The header entry for a config: its fields plus the model ``kind`` they describe."""
    return {METADATA_KEY: json.dumps({"kind": kind, **fields})}


def read_metadata_config(metadata: Mapping[str, str], kind: str) -> dict | None:
    """The config dict stored in a safetensors header, or None; ConfigError when it is not for ``kind``."""
    raw = metadata.get(METADATA_KEY)
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"The file's '{METADATA_KEY}' metadata is not valid JSON ({exc}).") from exc
    found = data.pop("kind", kind)
    if found != kind:
        raise ConfigError(f"The file's metadata describes a '{found}' model, not a '{kind}'.")
    return data
