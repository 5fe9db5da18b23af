"""Smoke tests: the real ComfyUI server starts with the pack loaded and runs a core-only prompt."""

from __future__ import annotations

import uuid

from PIL import Image


def test_server_answers_with_core_nodes(comfy):
    info = comfy.object_info()
    assert "SaveImage" in info
    assert "EmptyImage" in info
    stats = comfy.get("/system_stats")
    assert stats["system"]["python_version"]
    assert comfy.rss_mb() > 50


def test_pack_is_loaded(comfy):
    assert not comfy.pack_import_errors(), comfy.log_text()[-4000:]
    assert comfy.pack_loaded(), (
        f"{comfy.pack_path} is not among the loaded custom nodes:\n{comfy.log_text()[-4000:]}")


def test_core_prompt_saves_png(comfy):
    prefix = f"smoke/{uuid.uuid4().hex[:8]}"
    prompt = {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 40, "height": 24, "batch_size": 1, "color": 0xFF8000}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    }
    entry = comfy.run(prompt, timeout=120)
    assert entry["status"]["status_str"] == "success"
    paths = comfy.output_images(entry)
    assert len(paths) == 1
    path = paths[0]
    assert path.is_file() and path.suffix == ".png"
    assert path.is_relative_to(comfy.output_dir)
    with Image.open(path) as im:
        assert im.size == (40, 24)
        assert im.convert("RGB").getpixel((0, 0)) == (255, 128, 0)
