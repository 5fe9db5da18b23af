"""Output files: checked before any work, written all together or not at all.

Two parts, pure Python (no torch, no ComfyUI):

* ``OutputPlan`` takes a command's named outputs (files, and folders it fills) and its named
  inputs, and ``check()`` refuses, before anything is loaded, every output that cannot or must not
  be written: a missing or non-folder parent, a folder where no file can be created (tested by
  really creating and removing a file, since ``os.access`` says yes to root on read-only and
  immutable locations), an existing output that is a folder, a device or cannot be opened for
  writing, an output that is the same file as an input (after resolving links, and with
  ``os.path.samefile`` so hard links count) or inside an input folder, and two outputs that are
  the same file. Errors are ``OutputError`` (an ``ARSampleError``) naming the flags involved.
* ``write_file(path, write)`` is the one way the pack writes a file: ``write`` fills a temporary
  file in the target's folder, which then replaces the target, so a failure leaves nothing
  half-written. Inside ``with batch():`` (or ``OutputPlan.writing()``) the replacements wait until
  every file of the batch is written, then happen together; if any write fails, every temporary
  file is removed and files already replaced are put back.
"""

from __future__ import annotations

import contextvars
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Mapping

from .errors import ARSampleError


class OutputError(ARSampleError):
    """An output that cannot be written, or that would overwrite an input or another output."""


# -- checking --------------------------------------------------------------------------------------


def _real(path: str | os.PathLike) -> str:
    """Absolute path with every symbolic link resolved (a dangling link resolves to its target)."""
    return os.path.realpath(os.fspath(path))


def probe_writable(folder: str | os.PathLike) -> None:
    """Create and remove a temporary file in ``folder``; raises OSError when that is not possible.

    A real test: ``os.access`` answers yes for root on read-only mounts and immutable folders.
    """
    fd, tmp = tempfile.mkstemp(prefix=".arsample-probe-", dir=os.fspath(folder))
    os.close(fd)
    os.unlink(tmp)


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _nearest_existing(path: str) -> str:
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _same_file(a: str, b: str) -> bool:
    if _real(a) == _real(b):
        return True
    try:
        return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)
    except OSError:
        return False


def _inside(path: str, folder: str) -> bool:
    real_folder = _real(folder)
    return os.path.isdir(real_folder) and _real(path).startswith(real_folder.rstrip(os.sep) + os.sep)


def check_file_output(flag: str, path: str | os.PathLike) -> None:
    """Refuse a file output that cannot be written (see the module docstring)."""
    shown = os.fspath(path)
    if shown == "":
        raise OutputError(f"{flag} is empty; give a file name.")
    target = _real(path)
    if os.path.isdir(target):
        raise OutputError(f"{flag} '{shown}' is a folder; give a file name in it.")
    if os.path.lexists(target) and not os.path.isfile(target):
        raise OutputError(f"{flag} '{shown}' exists and is not a regular file (a device, pipe or socket); "
                          f"give another file name.")
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        existing = _nearest_existing(folder)
        if os.path.lexists(existing) and not os.path.isdir(existing):
            raise OutputError(f"{flag} '{shown}': '{existing}' is a file, not a folder; give a path in a folder.")
        raise OutputError(f"{flag}: folder '{folder}' does not exist; create it first.")
    try:
        probe_writable(folder)
    except OSError as exc:
        raise OutputError(f"{flag} '{shown}': cannot write in folder '{folder}' ({_reason(exc)}); "
                          f"choose a writable folder.") from exc
    if os.path.isfile(target):
        try:
            with open(target, "ab"):
                pass
        except OSError as exc:
            raise OutputError(f"{flag} '{shown}' exists and cannot be overwritten ({_reason(exc)}); "
                              f"choose another file name or make it writable.") from exc


def check_folder_output(flag: str, path: str | os.PathLike) -> None:
    """Refuse an output folder that is a file, or that cannot be created or written in.

    The folder need not exist yet; then the nearest existing folder above it must be writable.
    """
    shown = os.fspath(path)
    if shown == "":
        raise OutputError(f"{flag} is empty; give a folder.")
    target = _real(path)
    if os.path.lexists(target) and not os.path.isdir(target):
        raise OutputError(f"{flag} '{shown}' is a file, not a folder; give a folder (it is created if missing).")
    existing = _nearest_existing(target)
    if not os.path.isdir(existing):
        raise OutputError(f"{flag} '{shown}' cannot be created: '{existing}' is a file, not a folder.")
    try:
        probe_writable(existing)
    except OSError as exc:
        what = "cannot write in" if existing == target else f"cannot create it in '{existing}'"
        raise OutputError(f"{flag} '{shown}': {what} ({_reason(exc)}); choose a writable folder.") from exc


class OutputPlan:
    """A command's outputs and inputs, checked together before any work.

    ``outputs``: flag → file path (None = not asked for); ``folders``: flag → folder the command
    writes into (created if missing); ``inputs``: flag → file or folder the command reads.
    ``check()`` raises OutputError for the first problem found; ``writing()`` then writes all
    outputs at once (see ``batch``).
    """

    def __init__(self, outputs: Mapping[str, object] | None = None, inputs: Mapping[str, object] | None = None,
                 folders: Mapping[str, object] | None = None):
        def given(mapping):
            return {flag: os.fspath(p) for flag, p in (mapping or {}).items() if p is not None}

        self.outputs = given(outputs)
        self.inputs = given(inputs)
        self.folders = given(folders)

    def check(self) -> "OutputPlan":
        """Refuse clashes (output = input, output inside an input folder, output = output), then
        unwritable locations. Writes nothing except a probe file, created and removed at once."""
        outs = list(self.outputs.items())
        for flag, path in outs:
            for in_flag, in_path in self.inputs.items():
                if _same_file(path, in_path):
                    raise OutputError(f"{flag} '{path}' is the same file as {in_flag} '{in_path}'; writing it "
                                      f"would destroy that input. Choose another output name.")
                if _inside(path, in_path):
                    raise OutputError(f"{flag} '{path}' is inside the {in_flag} folder '{in_path}'; write "
                                      f"outputs elsewhere, so the input stays as it is.")
        for i, (flag, path) in enumerate(outs):
            for other_flag, other in outs[i + 1:]:
                if _same_file(path, other):
                    raise OutputError(f"{flag} and {other_flag} name the same file ('{path}', '{other}'); "
                                      f"give each output its own name.")
        for flag, path in outs:
            check_file_output(flag, path)
        for flag, path in self.folders.items():
            check_folder_output(flag, path)
        return self

    @contextmanager
    def writing(self) -> Iterator["_Batch"]:
        """``with plan.writing(): save(a); save(b)``: all outputs appear together, or none.

        A write that fails (disk full, the folder made read-only meanwhile) becomes an OutputError.
        """
        try:
            with batch() as staged:
                yield staged
        except OSError as exc:
            name = f" '{exc.filename}'" if getattr(exc, "filename", None) else ""
            raise OutputError(f"Could not write the outputs{name} ({_reason(exc)}); none was written. "
                              f"Check the free space and permissions, then run again.") from exc


# -- writing ---------------------------------------------------------------------------------------


class _Batch:
    """Temporary files written in a ``batch()``, renamed into place when it ends."""

    def __init__(self):
        self.staged: list[tuple[str, str]] = []  # (temporary file, target)

    def discard(self) -> None:
        for tmp, _ in self.staged:
            _unlink(tmp)
        self.staged.clear()

    def commit(self) -> None:
        """Rename every temporary file onto its target; on a failure put the old targets back."""
        done: list[tuple[str, str | None, bool]] = []  # (target, hard-link backup of the old file, existed)
        backups: list[str] = []
        try:
            for tmp, target in self.staged:
                existed = os.path.lexists(target)
                backup = _backup(target) if existed and len(self.staged) > 1 else None
                if backup:
                    backups.append(backup)
                os.replace(tmp, target)
                done.append((target, backup, existed))
        except BaseException:
            for target, backup, existed in reversed(done):
                try:
                    if backup:
                        os.replace(backup, target)
                    elif not existed:
                        os.unlink(target)
                except OSError:
                    pass
            self.discard()
            raise
        finally:
            for backup in backups:
                _unlink(backup)
        self.staged.clear()


_BATCH: contextvars.ContextVar[_Batch | None] = contextvars.ContextVar("arsample_output_batch", default=None)


@contextmanager
def batch() -> Iterator[_Batch]:
    """Defer the files written inside the block (by ``write_file`` and the save_* functions built on it)
    until the block ends, then rename them all into place; if the block raises, none appears.

    A batch inside a batch joins the outer one.
    """
    outer = _BATCH.get()
    if outer is not None:
        yield outer
        return
    current = _Batch()
    token = _BATCH.set(current)
    try:
        yield current
    except BaseException:
        _BATCH.reset(token)
        current.discard()
        raise
    _BATCH.reset(token)
    current.commit()


def write_file(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Write ``path`` through a temporary file in its folder: ``write(tmp)`` fills it, then it replaces
    ``path`` (at the end of the enclosing ``batch()``, if any). A link is written through, not replaced.

    The file gets the usual permissions (0666 minus the umask). On failure the temporary file is
    removed and the error propagates. Returns the path of the file written.
    """
    target = _real(path)
    folder, name = os.path.split(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        write(Path(tmp))
        make_readable(tmp)
        staged = _BATCH.get()
        if staged is not None:
            staged.staged.append((tmp, target))
        else:
            os.replace(tmp, target)
    except BaseException:
        _unlink(tmp)
        raise
    return Path(target)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """``write_file`` for bytes in memory."""
    return write_file(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """``write_file`` for text."""
    return write_bytes(path, text.encode(encoding))


def current_umask() -> int:
    """The process umask, read without changing it where /proc tells it (else set and restored)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def make_readable(path: str | os.PathLike) -> None:
    """mkstemp creates 0600 files; give the final file the usual permissions (0666 minus umask)."""
    os.chmod(path, 0o666 & ~current_umask())


def _backup(target: str) -> str | None:
    """A hard link to ``target`` under a temporary name, to restore it if a batch fails (None if links
    are not supported there)."""
    folder, name = os.path.split(target)
    for attempt in range(10):
        backup = os.path.join(folder, f".{name}.{os.getpid()}-{attempt}.bak")
        try:
            os.link(target, backup)
            return backup
        except FileExistsError:
            continue
        except OSError:
            return None
    return None


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
