"""Janus-Pro prompts: the conversation template, tokenisation with the release's ``tokenizer.json``, the rows.

The reference (deepseek-ai/Janus ``generation_inference.py`` and the Janus-Pro README / ``demo/app_januspro.py``)
builds the text with ``VLChatProcessor.apply_sft_template_for_multi_turn_prompts`` (the ``deepseek`` template,
empty system prompt) and appends the image-start tag:

    <|User|>: {prompt.strip()}\\n\\n<|Assistant|>:<begin_of_image>

(a message that is empty after ``strip`` becomes ``{role}:`` with no separator; the whole text is stripped
before the tag). The role strings are the conversation's own: the Janus-Pro README passes ``<|User|>`` /
``<|Assistant|>``, the older ``generation_inference.py`` ``User`` / ``Assistant`` (``roles=PLAIN_ROLES``).
``LlamaTokenizerFast.encode`` then prepends BOS and adds no EOS. The unconditional row is the same ids with every
position but the first (BOS) and the last (the image-start tag) replaced by the id of the pad token
``<｜▁pad▁｜>``, looked up by name. Tokenisation uses the ``tokenizers`` library only (no ``transformers``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ...errors import CheckpointError, ConfigError, SamplingError

PRO_ROLES = ("<|User|>", "<|Assistant|>")  # Janus-Pro README / demo
PLAIN_ROLES = ("User", "Assistant")  # generation_inference.py
IMAGE_START_TAG = "<begin_of_image>"
PAD_TAG = "<｜▁pad▁｜>"
BOS_TAG = "<｜begin▁of▁sentence｜>"
_SEPARATOR = "\n\n"  # the deepseek template's separator after a user message


def format_prompt(prompt: str, roles: tuple[str, str] = PRO_ROLES, image_start_tag: str = IMAGE_START_TAG) -> str:
    """The text the reference tokenises for ``prompt``: the deepseek template with an empty system prompt, stripped,
    then ``image_start_tag`` (``apply_sft_template_for_multi_turn_prompts`` + ``image_start_tag``)."""
    user = prompt.strip()
    text = f"{roles[0]}: {user}{_SEPARATOR}" if user else f"{roles[0]}:"
    text += f"{roles[1]}:"  # the assistant's message is empty
    return text.strip() + image_start_tag


@dataclass(frozen=True)
class JanusCondition:
    """What Janus-Pro generates from: one prompt per image.

    ``input_ids``: per sample the conditional row (BOS first, image-start tag last, int ids of the text
    vocabulary); ``uncond_ids``: the same length, the unconditional row of the same sample; ``prompts``: the
    texts as given (for display).
    """

    input_ids: tuple[tuple[int, ...], ...]
    uncond_ids: tuple[tuple[int, ...], ...]
    prompts: tuple[str, ...]

    def __post_init__(self):
        if not self.input_ids:
            raise SamplingError("No prompt given: type at least one prompt.")
        if len(self.uncond_ids) != len(self.input_ids) or \
                any(len(a) != len(b) for a, b in zip(self.input_ids, self.uncond_ids)):
            raise SamplingError("Each Janus-Pro prompt needs an unconditional row of the same length.")

    @property
    def batch_size(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]


def unconditional_ids(ids: Sequence[int], pad_id: int) -> tuple[int, ...]:
    """The reference's unconditional row: ``ids`` with every position except the first and the last set to
    ``pad_id``."""
    ids = tuple(int(i) for i in ids)
    if len(ids) <= 2:
        return ids
    return (ids[0],) + (int(pad_id),) * (len(ids) - 2) + (ids[-1],)


class JanusPromptTokenizer:
    """The release's ``tokenizer.json`` (a ``tokenizers.Tokenizer``) with the special tokens looked up by name.

    ``bos_token`` comes from ``tokenizer_config.json`` beside the file when it names one (else
    ``<｜begin▁of▁sentence｜>``), and is prepended unless that config sets ``add_bos_token`` false.
    Raises CheckpointError for a missing or unreadable file, ConfigError when a special token is not in it.
    """

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"Tokenizer file not found: '{path}'. Janus-Pro needs the tokenizer.json of its "
                                  f"release folder.")
        try:
            from tokenizers import Tokenizer
        except ImportError:  # pragma: no cover - a dependency of the pack
            raise ConfigError("Janus-Pro prompts need the 'tokenizers' package: pip install tokenizers.") from None
        try:
            self.tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # noqa: BLE001 - the library raises plain Exceptions for bad files
            raise CheckpointError(f"Cannot read '{path.name}' as a tokenizers JSON ({exc}); download it again.") \
                from None
        self.path = path
        settings = _tokenizer_config(path.with_name("tokenizer_config.json"))
        self.add_bos = bool(settings.get("add_bos_token", True))
        self.bos_id = self.token_id(_token_name(settings.get("bos_token")) or BOS_TAG)
        self.pad_id = self.token_id(PAD_TAG)
        self.image_start_id = self.token_id(IMAGE_START_TAG)

    def token_id(self, name: str) -> int:
        """The vocabulary id of the token named ``name``; ConfigError when the tokenizer has none."""
        found = self.tokenizer.token_to_id(name)
        if found is None:
            raise ConfigError(f"'{self.path.name}' has no token '{name}': it is not Janus-Pro's tokenizer.json.")
        return int(found)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` as ``LlamaTokenizerFast.encode`` gives them here: BOS first, no EOS."""
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        return ([self.bos_id] if self.add_bos else []) + list(ids)

    def prompt_ids(self, prompt: str, roles: tuple[str, str] = PRO_ROLES) -> list[int]:
        """The conditional row of one prompt (template, image-start tag, BOS)."""
        return self.encode(format_prompt(prompt, roles))

    def condition(self, prompts: str | Sequence[str], roles: tuple[str, str] = PRO_ROLES,
                  max_tokens: int | None = None) -> JanusCondition:
        """Prompt strings (one per image) → JanusCondition. SamplingError for no prompt, a non-string, or a prompt
        whose ids outnumber ``max_tokens`` (the model's context minus the image tokens)."""
        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = list(prompts)
        if not prompts:
            raise SamplingError("No prompt given: type at least one prompt.")
        rows = []
        for prompt in prompts:
            if not isinstance(prompt, str):
                raise SamplingError(f"Janus-Pro prompts are text; got {type(prompt).__name__}.")
            ids = self.prompt_ids(prompt, roles)
            if max_tokens is not None and max_tokens < 1:
                raise SamplingError(f"The image alone needs more positions than the model's context has "
                                    f"({-max_tokens} too many): lower the image size.")
            if max_tokens is not None and len(ids) > max_tokens:
                raise SamplingError(f"The prompt is {len(ids)} tokens long but the model's context leaves room for "
                                    f"{max_tokens} before the image tokens: shorten the prompt or lower the image "
                                    f"size.")
            rows.append(tuple(ids))
        return JanusCondition(tuple(rows), tuple(unconditional_ids(r, self.pad_id) for r in rows), tuple(prompts))


def _tokenizer_config(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read '{path}' as JSON ({exc}); download it again.") from None
    return data if isinstance(data, dict) else {}


def _token_name(value) -> str | None:
    """A special token of tokenizer_config.json: a string or an AddedToken dict with ``content``."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None
