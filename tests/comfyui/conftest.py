"""Fixtures for the tests that run the pack inside a real, headless ComfyUI server.

The first run builds ComfyUI 0.3.75 and its venv (~6 GB, a few minutes) in
``$ARSAMPLE_COMFYUI_CACHE`` (default ``~/.cache/arsample-comfyui``); later runs reuse them and only
start the server (~5-15 s). ``ARSAMPLE_SKIP_COMFYUI=1`` skips these tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: comfyui_env

from comfyui_env import PACK_DIR, cache_dir, comfyui_python, comfyui_tree
from comfyui_server import ComfyServer  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "comfyui: runs against a real headless ComfyUI server")


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.comfyui)


@pytest.fixture(scope="session")
def comfy_models(tmp_path_factory) -> Path:
    """The server's models folder: ``autoregressive/``, ``vq/`` and ``text_encoders/`` (linked into its base dir, so
    files written here later are seen after a refresh)."""
    root = tmp_path_factory.mktemp("comfy-models")
    for sub in ("autoregressive", "vq", "text_encoders"):
        (root / sub).mkdir()
    return root


@pytest.fixture(scope="session")
def server(comfy):
    """The server with tiny random stand-ins of the official LlamaGen and VAR files in its models folder
    (``c2i_L_384.pt``, ``vq_ds16_c2i.pt``, ``t2i_XL_stage1_256.pt``, ``vq_ds16_t2i.pt``, ``flan-t5-xl/``,
    ``var_d16.pth``, ``vae_ch160v4096z32.pth``)."""
    from tinymodels import write_official_standins, write_t2i_standins, write_var_standins

    write_official_standins(comfy.models_path)
    write_var_standins(comfy.models_path)
    write_t2i_standins(comfy.models_path, Path(__file__).resolve().parents[1] / "fixtures" / "golden")
    return comfy


@pytest.fixture(scope="session")
def comfy(comfy_models) -> ComfyServer:
    """ONE ComfyUI server for the whole session, with this pack under custom_nodes/."""
    if os.environ.get("ARSAMPLE_SKIP_COMFYUI"):
        pytest.skip("ARSAMPLE_SKIP_COMFYUI is set")
    cache = cache_dir()
    tree = comfyui_tree(cache)
    python = comfyui_python(cache, tree)
    server = ComfyServer(python, tree, PACK_DIR, models_dir=comfy_models)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def run_pack_script():
    """Run a script in the ComfyUI venv with the pack importable as ``arsample_pack`` (in-process tests).

    ``run(script, work, *args)`` calls ``python -c script TREE WORK *args`` with ``WORK/arsample_pack``
    linked to this repository, and fails the test with the script's stderr if it does not exit 0.
    """
    if os.environ.get("ARSAMPLE_SKIP_COMFYUI"):
        pytest.skip("ARSAMPLE_SKIP_COMFYUI is set")
    cache = cache_dir()
    tree = comfyui_tree(cache)
    python = comfyui_python(cache, tree)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def run(script: str, work: Path, *args) -> subprocess.CompletedProcess:
        link = Path(work) / "arsample_pack"
        if not link.exists():
            link.symlink_to(PACK_DIR, target_is_directory=True)
        proc = subprocess.run([str(python), "-c", script, str(tree), str(work), *map(str, args)],
                              capture_output=True, text=True, timeout=600, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc

    return run
