"""Prompt cleaning and the left-aligned caption layout LlamaGen's text-to-image GPT expects."""

from __future__ import annotations

import re
import unicodedata
import urllib.parse

import torch

_URL = re.compile(r"\b(?:https?://|www\.)\S+|\b[\w.-]+\.(?:com|org|net|edu|gov|io)(?:/\S*)?", re.IGNORECASE)
_HANDLE = re.compile(r"@\w+")
_DASHES = re.compile(r"[\u2010-\u2015\u2212\u30fc\ufe58\ufe63\uff0d]+")
_QUOTES = {"\u201c": '"', "\u201d": '"', "\u00ab": '"', "\u00bb": '"', "\u2018": "'", "\u2019": "'", "`": "'"}
_SPACE_AFTER_PUNCT = re.compile(r"([^\d\s][,./])(?=\w)")


def clean_prompt(text: str) -> str:
    """Normalise a prompt the way LlamaGen's captions were normalised for training.

    The reference runs a long caption-cleaning routine (from PixArt) that lower-cases,
    drops URLs and @handles, unifies quotes and dashes and tidies spaces and
    punctuation; the parts that matter for typed prompts are done here (its
    HTML/mojibake repair needs extra packages and rarely changes a typed prompt).
    """
    text = unicodedata.normalize("NFC", urllib.parse.unquote_plus(str(text))).strip().lower()
    text = _URL.sub("", text)
    text = _HANDLE.sub("", text)
    text = _DASHES.sub("-", text)
    text = "".join(_QUOTES.get(ch, ch) for ch in text)
    text = _SPACE_AFTER_PUNCT.sub(r"\1 ", text)
    return re.sub(r"\s+", " ", text).strip()


def left_align(features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each prompt's valid rows to the end and zero the padding, as LlamaGen's sampler does.

    ``features`` (B, L, C) and ``mask`` (B, L) come right-padded from the tokenizer;
    the result has the n valid rows of each prompt in the last n slots (so the last
    condition position, which predicts the first image token, is the prompt's ``</s>``).
    """
    mask = mask.to(features.device).long()
    valid = mask.sum(dim=1)  # (B,)
    length = features.shape[1]
    # Slot j of prompt b takes row (j + n_b) mod L: each prompt is rolled left by its n_b valid rows.
    slots = torch.arange(length, device=features.device)[None, :]
    source = (slots + valid[:, None]) % length
    aligned = torch.gather(features, 1, source[..., None].expand(-1, -1, features.shape[2]))
    new_mask = (slots >= (length - valid)[:, None]).long()
    return aligned * new_mask[..., None].to(aligned.dtype), new_mask
