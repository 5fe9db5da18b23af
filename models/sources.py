"""Where each kind of model file goes (ComfyUI's models/ folders) and where to download it.

Used by the loader nodes to say, in one line, what to do when a workflow names no
file, or one that is not there (a workflow saved on another machine). No ComfyUI
import: the messages are tested without it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import CheckpointError


@dataclass(frozen=True)
class ModelSource:
    """One kind of model file: what it is, the node input that names it, its folder, examples, downloads."""

    what: str
    input_name: str
    folder: str
    examples: str
    download: str
    alternative: str = ""  # what else the input accepts, e.g. the embedded model


MEISSONIC_DOWNLOAD = "huggingface.co/MeissonFlow/Meissonic"  # the diffusers folder (transformer/, vqvae/, text_encoder/)

_LLAMAGEN = ("huggingface.co/FoundationVision/LlamaGen (class-to-image) or huggingface.co/peizesun/llamagen_t2i "
             "(text-to-image)")

SOURCES = {
    "gpt": ModelSource("LlamaGen GPT", "ckpt_name", "autoregressive", "c2i_L_384.pt, t2i_XL_stage1_256.pt",
                       _LLAMAGEN, "or pick embedded:tiny"),
    "vq": ModelSource("LlamaGen VQ tokenizer", "vq_name", "vq", "vq_ds16_c2i.pt, vq_ds16_t2i.pt", _LLAMAGEN,
                      "or pick embedded:tiny"),
    "t5": ModelSource("FLAN-T5-XL text encoder", "t5_name", "text_encoders",
                      "the flan-t5-xl/ folder, or one .safetensors of its encoder", "huggingface.co/google/flan-t5-xl"),
}


def source(role: str) -> ModelSource:
    """The ModelSource of ``role`` ('gpt', 'vq' or 't5')."""
    try:
        return SOURCES[role]
    except KeyError:
        raise ValueError(f"unknown model role '{role}'; known: {', '.join(SOURCES)}") from None


def require_file_name(choice: object, role: str) -> str:
    """``choice`` as a file name; a CheckpointError saying what to download and where when it is None or blank."""
    if isinstance(choice, str) and choice.strip():
        return choice
    src = source(role)
    raise CheckpointError(f"No {src.what} file is chosen in '{src.input_name}' (the workflow names none, e.g. it "
                          f"was saved on another machine): download one ({src.examples}) from {src.download} into "
                          f"models/{src.folder}/, press R and pick it{_also(src)}.")


def not_in_folder(choice: str, role: str) -> CheckpointError:
    """The error for a ``choice`` that is not in the role's folder: where it goes and where to download it."""
    src = source(role)
    return CheckpointError(f"The {src.what} '{choice}' ({src.input_name}) is not in models/{src.folder}/: download "
                           f"it from {src.download} into models/{src.folder}/ and press R, or pick another "
                           f"file{_also(src)}.")


def _also(src: ModelSource) -> str:
    return f" ({src.alternative})" if src.alternative else ""
