"""Outputs of every command that writes (generate, decode, convert, demo, bench, train).

Checked before any model is loaded (a one-line error, exit 2, nothing written), never the same file
as an input or as another output, and written all together or not at all (issue 10, kinds 4 and 5).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from arsample import outputs
from arsample.cli import main

# Every output of every command, by flag, with a file name in a writable folder.
OUTPUTS = {
    "generate": {"--out": "grid.png", "--save-tokens": "tokens.npy", "--entropy-map": "map.png"},
    "decode": {"--out": "strip.png"},
    "convert": {"output": "model.safetensors"},
    "demo": {"--out": "demo.png"},
    "bench": {"--json": "bench.json", "--markdown": "bench.md"},
    "train": {"--work-dir": "run", "--export-dir": "export"},
}
EVERY_OUTPUT = [(command, flag) for command, flags in OUTPUTS.items() for flag in flags]
FOLDER_FLAGS = ("--work-dir", "--export-dir")


@pytest.fixture
def no_work(monkeypatch):
    """Every loader and worker the commands call fails the test, proving the checks come first."""
    def loaded(*args, **kwargs):
        raise AssertionError("a model or input was loaded before the outputs were checked")

    for target in ("arsample.cli.generate.load_tokenizer", "arsample.cli.generate.load_model",
                   "arsample.cli.generate.load_t5", "arsample.cli.decode.load_tokenizer", "arsample.cli.decode.load_tokens",
                   "arsample.cli.convert.read_model_file", "arsample.models.t5.read_t5_checked",
                   "arsample.cli.demo.load_model", "arsample.cli.demo.load_tokenizer", "arsample.cli.bench.load_model",
                   "arsample.cli.bench.load_tokenizer", "arsample.cli.bench.load_evaluator", "arsample.lab.train.run",
                   "arsample.lab.train_var.run"):
        monkeypatch.setattr(target, loaded)


@pytest.fixture
def lock(monkeypatch):
    """``lock(path)`` makes a folder or file really unwritable, and undoes it after the test.

    We run the tests as root, and root ignores permission bits (chmod 0555 stops nobody), so as root
    the immutable attribute is set (``chattr +i``; ext4/xfs/btrfs with CAP_LINUX_IMMUTABLE, as here).
    As another user chmod is enough. Where neither works (e.g. tmpfs, or a container without the
    capability) the writability probe is made to fail for that folder, and file cases are skipped.
    Returns how the path was locked.
    """
    undo = []

    def lock(path: Path) -> str:
        path = Path(path)
        if os.geteuid() != 0:
            mode = path.stat().st_mode
            path.chmod(0o555 if path.is_dir() else 0o444)
            undo.append(lambda: path.chmod(mode))
        elif shutil.which("chattr") and subprocess.run(["chattr", "+i", str(path)],
                                                       capture_output=True).returncode == 0:
            undo.append(lambda: subprocess.run(["chattr", "-i", str(path)], check=True))
        if not _writable(path):
            return "really"
        if path.is_file():
            pytest.skip("cannot make a file unwritable here (root without chattr +i)")
        real_probe, locked = outputs.probe_writable, os.path.realpath(path)

        def probe(folder):
            if os.path.realpath(folder) == locked:
                raise PermissionError(13, "Permission denied")
            real_probe(folder)

        monkeypatch.setattr(outputs, "probe_writable", probe)
        return "probe"

    yield lock
    for step in reversed(undo):
        step()


def _writable(path: Path) -> bool:
    try:
        if path.is_dir():
            (path / ".w").touch()
            (path / ".w").unlink()
        else:
            with open(path, "ab"):
                pass
        return True
    except OSError:
        return False


@pytest.fixture
def inputs(tiny_files, tmp_path):
    """Real inputs for every command: a tiny GPT + VQ and a tokens file, in their own folder."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    gpt, vq = (Path(shutil.copy(p, folder)) for p in tiny_files)
    tokens = folder / "tokens.npy"
    np.save(tokens, np.zeros((1, 16), dtype=np.int64))
    return {"gpt": gpt, "vq": vq, "tokens": tokens}


def _argv(command: str, inputs: dict, good: Path, **paths) -> list[str]:
    """``command`` with every output in ``good``, except those given in ``paths`` (flag → path, flags
    spelled with underscores: out, save_tokens, output, work_dir, ...)."""
    outs = {flag: str(good / name) for flag, name in OUTPUTS[command].items()}
    for key, value in paths.items():
        flag = key if key == "output" else "--" + key.replace("_", "-")
        assert flag in outs, flag
        outs[flag] = str(value)
    gpt, vq, tokens = str(inputs["gpt"]), str(inputs["vq"]), str(inputs["tokens"])
    if command == "convert":
        return ["convert", gpt, outs["output"]]
    base = {"generate": ["--gpt", gpt, "--vq", vq, "--classes", "1", "--device", "cpu"],
            "decode": ["--vq", vq, "--tokens", tokens, "--device", "cpu"],
            "demo": ["--classes", "0"], "bench": ["--per-class", "1"], "train": []}[command]
    return [command, *base, *[a for flag, path in outs.items() for a in (flag, path)]]


def _error(capsys, command: str, *words: str) -> str:
    """The one-line error of ``command``; it contains every one of ``words``."""
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"arsample {command}: error: "), err
    assert "\n" not in err and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)
    return err


def _tree(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` with a digest of its bytes (folders: '/')."""
    return {str(p.relative_to(root)): "/" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))}


def _bad_name(command: str, flag: str) -> str:
    return "run" if flag in FOLDER_FLAGS else OUTPUTS[command][flag]


# -- kind 4: unwritable outputs are refused before any work ------------------------------------------


@pytest.mark.parametrize("command,flag", EVERY_OUTPUT)
def test_unwritable_folder_is_refused_before_any_model_loads(command, flag, inputs, tmp_path, lock, no_work,
                                                             capsys):
    good, locked = tmp_path / "good", tmp_path / "locked"
    good.mkdir()
    locked.mkdir()
    lock(locked)
    before = _tree(tmp_path)
    argv = _argv(command, inputs, good, **{flag.strip("-").replace("-", "_"): locked / _bad_name(command, flag)})
    assert main(argv) == 2
    _error(capsys, command, flag, "choose a writable folder")
    assert _tree(tmp_path) == before  # nothing written anywhere: not the other outputs, not a temp file


@pytest.mark.parametrize("command,flag", EVERY_OUTPUT)
def test_output_under_a_file_is_refused_before_any_model_loads(command, flag, inputs, tmp_path, no_work, capsys):
    good = tmp_path / "good"
    good.mkdir()
    note = tmp_path / "notes.txt"
    note.write_text("keep me")
    before = _tree(tmp_path)
    argv = _argv(command, inputs, good, **{flag.strip("-").replace("-", "_"): note / _bad_name(command, flag)})
    assert main(argv) == 2
    _error(capsys, command, flag, "is a file, not a folder")
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("flag", FOLDER_FLAGS)
def test_train_folder_that_is_a_file_is_refused(flag, inputs, tmp_path, no_work, capsys):
    note = tmp_path / "notes.txt"
    note.write_text("keep me")
    before = _tree(tmp_path)
    assert main(_argv("train", inputs, tmp_path, **{flag.strip("-").replace("-", "_"): note})) == 2
    _error(capsys, "train", flag, "is a file, not a folder")
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("command,flag", [("generate", "--save-tokens"), ("decode", "--out"), ("convert", "output"),
                                          ("demo", "--out"), ("bench", "--markdown")])
def test_existing_output_that_cannot_be_overwritten_is_refused(command, flag, inputs, tmp_path, lock, no_work,
                                                               capsys):
    good = tmp_path / "good"
    good.mkdir()
    kept = good / OUTPUTS[command][flag]
    kept.write_bytes(b"an older result")
    lock(kept)
    before = _tree(tmp_path)
    assert main(_argv(command, inputs, good)) == 2
    _error(capsys, command, flag, "cannot be overwritten")
    assert _tree(tmp_path) == before


def test_train_export_files_that_cannot_be_replaced_are_refused(inputs, tmp_path, lock, no_work, capsys):
    export = tmp_path / "export"
    export.mkdir()
    for name in ("tiny_shapes_vq", "tiny_shapes_gpt"):
        (export / f"{name}.safetensors").write_bytes(b"shipped " + name.encode())
    lock(export / "tiny_shapes_gpt.safetensors")
    before = _tree(tmp_path)
    assert main(_argv("train", inputs, tmp_path, export_dir=export)) == 2
    _error(capsys, "train", "--export-dir", "tiny_shapes_gpt.safetensors", "cannot be overwritten")
    assert _tree(tmp_path) == before


def test_a_failed_write_leaves_no_output_at_all(tiny_files, tmp_path, monkeypatch, capsys):
    """A write that fails after the checks (disk full) leaves none of the outputs, and is a one-line error."""
    gpt, vq = tiny_files
    out = tmp_path / "out"
    out.mkdir()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", disk_full)  # the tokens: written second, after the image
    argv = ["generate", "--gpt", str(gpt), "--vq", str(vq), "--classes", "1,2", "--device", "cpu",
            "--out", str(out / "grid.png"), "--save-tokens", str(out / "t.npy"), "--entropy-map", str(out / "m.png")]
    assert main(argv) == 2
    _error(capsys, "generate", "No space left on device", "none was written")
    assert list(out.iterdir()) == []


# -- kind 5: an output is never an input, nor another output ----------------------------------------


def _digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_decode_out_is_the_vq_file(inputs, tmp_path, capsys):
    vq = inputs["vq"]
    kept = _digest(vq)
    argv = ["decode", "--vq", str(vq), "--tokens", str(inputs["tokens"]), "--out", str(vq), "--device", "cpu"]
    assert main(argv) == 2
    _error(capsys, "decode", "--out", "--vq", "same file")
    assert _digest(vq) == kept


@pytest.mark.parametrize("how", ["same path", "other spelling", "symlink", "hard link"])
def test_generate_out_is_an_input_file(how, inputs, tmp_path, no_work, capsys):
    gpt = inputs["gpt"]
    kept = _digest(gpt)
    out = {"same path": gpt, "other spelling": gpt.parent / ".." / gpt.parent.name / gpt.name,
           "symlink": tmp_path / "link.png", "hard link": tmp_path / "hard.png"}[how]
    if how == "symlink":
        out.symlink_to(gpt)
    elif how == "hard link":
        os.link(gpt, out)
    argv = ["generate", "--gpt", str(gpt), "--vq", str(inputs["vq"]), "--classes", "1", "--out", str(out)]
    assert main(argv) == 2
    _error(capsys, "generate", "--out", "--gpt", "same file")
    assert _digest(gpt) == kept


@pytest.mark.parametrize("flag", ["--save-tokens", "--entropy-map"])
def test_generate_outputs_that_are_one_file(flag, inputs, tmp_path, no_work, capsys):
    out = tmp_path / "grid.png"
    other = tmp_path / "link.png"
    other.symlink_to(out)  # a link to the (not yet written) image: the same file
    before = sorted(p.name for p in tmp_path.iterdir())
    for second in (out, tmp_path / "." / "grid.png", other):
        argv = ["generate", "--gpt", str(inputs["gpt"]), "--vq", str(inputs["vq"]), "--classes", "1",
                "--out", str(out), flag, str(second)]
        assert main(argv) == 2
        _error(capsys, "generate", "--out", flag, "same file")
    assert sorted(p.name for p in tmp_path.iterdir()) == before and not out.exists()


def test_bench_json_and_markdown_are_one_file(tmp_path, no_work, capsys):
    assert main(["bench", "--json", str(tmp_path / "b.txt"), "--markdown", str(tmp_path / "b.txt")]) == 2
    _error(capsys, "bench", "--json", "--markdown", "same file")
    assert not (tmp_path / "b.txt").exists()


def test_convert_output_is_the_input_through_a_link(inputs, tmp_path, no_work, capsys):
    gpt = inputs["gpt"]
    kept = _digest(gpt)
    link = tmp_path / "link.safetensors"
    link.symlink_to(gpt)
    assert main(["convert", str(gpt), str(link)]) == 2
    _error(capsys, "convert", f"output '{link}'", f"input '{gpt}'", "same file")
    assert _digest(gpt) == kept and link.is_symlink()


def test_output_inside_an_input_folder_is_refused(golden, tmp_path, inputs, no_work, capsys):
    t5 = tmp_path / "flan-t5-xl"
    shutil.copytree(golden / "t5_tiny", t5)
    before = _tree(t5)
    assert main(["convert", str(t5), str(t5 / "encoder.safetensors")]) == 2
    _error(capsys, "convert", "output", "inside the input folder")
    argv = ["generate", "--gpt", str(inputs["gpt"]), "--vq", str(inputs["vq"]), "--t5", str(t5), "--prompt", "a cat",
            "--out", str(tmp_path / "grid.png"), "--save-tokens", str(t5 / "tokens.npy")]
    assert main(argv) == 2
    _error(capsys, "generate", "--save-tokens", "inside the --t5 folder")
    assert _tree(t5) == before and not (tmp_path / "grid.png").exists()


def test_demo_out_is_the_embedded_model(tmp_path, no_work, capsys):
    from arsample.models.embedded import embedded_paths

    shipped = embedded_paths("tiny")["gpt"]
    kept = _digest(shipped)
    assert main(["demo", "--out", str(shipped)]) == 2
    _error(capsys, "demo", "--out", "--model tiny", "same file")
    assert _digest(shipped) == kept


# -- the writer: one helper, all or nothing ---------------------------------------------------------


def test_batch_puts_everything_back_when_one_file_fails(tmp_path, monkeypatch):
    (tmp_path / "b.txt").write_text("old b")
    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith("c.txt"):
            raise OSError(5, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="Input/output"):
        with outputs.batch():
            outputs.write_text(tmp_path / "a.txt", "new a")
            outputs.write_text(tmp_path / "b.txt", "new b")
            outputs.write_text(tmp_path / "c.txt", "new c")
            assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.txt"]  # no temporary or backup file left
    assert (tmp_path / "b.txt").read_text() == "old b"


def test_batch_writes_nothing_when_the_block_fails(tmp_path):
    with pytest.raises(RuntimeError):
        with outputs.batch():
            outputs.write_text(tmp_path / "a.txt", "a")
            raise RuntimeError("the next result could not be made")
    assert list(tmp_path.iterdir()) == []


def test_write_file_permissions_and_links(tmp_path):
    target = tmp_path / "real.txt"
    target.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    outputs.write_text(link, "new")
    assert link.is_symlink() and target.read_text() == "new"  # written through the link
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.txt", "real.txt"]


def test_train_export_replaces_all_three_files_or_none(tmp_path, tiny_c2i, tiny_vq, monkeypatch):
    import safetensors.torch
    import torch

    from arsample.models.checkpoint import save_safetensors_atomic
    from arsample.lab import train
    from arsample.lab.train import TrainSettings, export

    monkeypatch.setattr(train, "vq_quality", lambda vq: {"psnr_db": 0.0})  # 512 images: not needed here

    work, export_dir = tmp_path / "work", tmp_path / "export"
    work.mkdir()
    export_dir.mkdir()
    save_safetensors_atomic(tiny_vq.state_dict(), work / "vq_final.safetensors", tiny_vq.config.to_metadata())
    save_safetensors_atomic(tiny_c2i.state_dict(), work / "gpt_final.safetensors", tiny_c2i.config.to_metadata())
    save_safetensors_atomic({"w": torch.ones(2)}, work / "evaluator_final.safetensors", {"heldout_accuracy": "0.5"})
    for name in ("tiny_shapes_vq", "tiny_shapes_gpt", "tiny_shapes_evaluator"):
        (export_dir / f"{name}.safetensors").write_bytes(b"shipped " + name.encode())
    before = _tree(export_dir)
    real_save, calls = safetensors.torch.save_file, []

    def third_fails(tensors, filename, metadata=None):
        calls.append(filename)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real_save(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", third_fails)
    with pytest.raises(OSError):
        export(work, export_dir, TrainSettings())
    assert len(calls) == 3 and _tree(export_dir) == before  # the first two are not replaced either
    monkeypatch.setattr(safetensors.torch, "save_file", real_save)
    export(work, export_dir, TrainSettings())
    after = _tree(export_dir)
    assert after.keys() == before.keys() and all(after[k] != before[k] for k in after)  # all three replaced
