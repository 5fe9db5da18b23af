"""Loader inputs that name no file, or a file that is not there: the message says what, where and from where.

The nodes call these through nodes/paths.py and nodes/text.py; the same cases run
through a real ComfyUI in tests/comfyui/test_pack_in_comfyui.py.
"""

from __future__ import annotations

import pytest

from arsample.errors import CheckpointError
from arsample.models.sources import SOURCES, not_in_folder, require_file_name

LLAMAGEN = ("huggingface.co/FoundationVision/LlamaGen", "huggingface.co/peizesun/llamagen_t2i")
EXPECTED = {
    "gpt": ("ckpt_name", "models/autoregressive/", LLAMAGEN),
    "vq": ("vq_name", "models/vq/", LLAMAGEN),
    "t5": ("t5_name", "models/text_encoders/", ("huggingface.co/google/flan-t5-xl",)),
}


@pytest.mark.parametrize("role", sorted(EXPECTED))
@pytest.mark.parametrize("choice", [None, "", "   ", 0])
def test_no_file_name_says_which_file_where_and_from_where(role, choice):
    with pytest.raises(CheckpointError) as info:
        require_file_name(choice, role)
    message = str(info.value)
    input_name, folder, urls = EXPECTED[role]
    assert SOURCES[role].what in message and f"'{input_name}'" in message and folder in message
    assert all(url in message for url in urls)
    assert "\n" not in message and "NoneType" not in message


@pytest.mark.parametrize("role", sorted(EXPECTED))
def test_file_not_in_folder_says_where_it_goes_and_from_where(role):
    message = str(not_in_folder("c2i_XXL_384.pt", role))
    input_name, folder, urls = EXPECTED[role]
    assert "'c2i_XXL_384.pt'" in message and input_name in message and folder in message
    assert all(url in message for url in urls) and "press R" in message


@pytest.mark.parametrize("role", sorted(EXPECTED))
def test_a_real_name_passes_unchanged(role):
    assert require_file_name("c2i_L_384.pt", role) == "c2i_L_384.pt"
    assert require_file_name("flan-t5-xl/", role) == "flan-t5-xl/"


def test_embedded_model_is_offered_for_gpt_and_vq_only():
    assert "embedded:tiny" in str(not_in_folder("x.pt", "gpt")) and "embedded:tiny" in str(not_in_folder("x.pt", "vq"))
    assert "embedded" not in str(not_in_folder("x.safetensors", "t5"))
