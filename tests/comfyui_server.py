"""A real, headless ComfyUI server for the tests (helper module, no tests here).

* :class:`ComfyServer` - starts ``main.py --cpu`` on 127.0.0.1 with a throw-away base directory
  (``custom_nodes/<pack>`` symlinked to this repo, ``models/``, ``input/``, ``output/``, ...) and
  talks to it over HTTP with the standard library only. Its Python and tree come from ``comfyui_env``.
"""

from __future__ import annotations

import atexit
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
from pathlib import Path
from typing import Any, Iterable

from comfyui_env import PACK_NAME, _log, _tail, cache_dir



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
