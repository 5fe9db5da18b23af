"""Shared fixtures: golden data paths and tiny random models in the official layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from arsample.models.checkpoint import save_safetensors_atomic
from arsample.models.llamagen import LlamaGenGPT, LlamaGenVQ
from tinymodels import randomize_, tiny_gpt_config, tiny_vq_config

GOLDEN = Path(__file__).parent / "fixtures" / "golden"


@pytest.fixture(scope="session")
def golden() -> Path:
    return GOLDEN


@pytest.fixture
def tiny_c2i() -> LlamaGenGPT:
    return randomize_(LlamaGenGPT(tiny_gpt_config()), seed=1)


@pytest.fixture
def tiny_t2i() -> LlamaGenGPT:
    return randomize_(LlamaGenGPT(tiny_gpt_config(model_type="t2i")), seed=2)


@pytest.fixture
def tiny_vq() -> LlamaGenVQ:
    return randomize_(LlamaGenVQ(tiny_vq_config()), seed=3)


@pytest.fixture
def tiny_files(tmp_path, tiny_c2i, tiny_vq):
    """A paired tiny GPT + VQ saved as safetensors with their configs in the metadata."""
    gpt_path, vq_path = tmp_path / "gpt_tiny.safetensors", tmp_path / "vq_tiny.safetensors"
    save_safetensors_atomic(tiny_c2i.state_dict(), gpt_path, tiny_c2i.config.to_metadata())
    save_safetensors_atomic(tiny_vq.state_dict(), vq_path, tiny_vq.config.to_metadata())
    return gpt_path, vq_path
