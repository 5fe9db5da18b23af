"""T5 prompt tokenization, as LlamaGen calls the Hugging Face tokenizer.

The reference asks for ``max_length=120, padding="max_length", truncation=True``
with special tokens: at most 119 text tokens, then ``</s>``, then ``<pad>`` up to
120, and a mask that is 1 on the text and ``</s>``. We read the same
``tokenizer.json`` with the ``tokenizers`` library (what the Hugging Face "fast"
tokenizer runs underneath) and add the end token and padding ourselves.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import torch

from ...errors import CheckpointError

# The T5 v1.1 SentencePiece vocabulary (32,100 pieces; FLAN-T5 uses the same one), in the Hugging Face
# tokenizer.json format, gzipped. Used when a text encoder comes without its own tokenizer files.
BUNDLED_TOKENIZER = Path(__file__).parent / "data" / "t5_tokenizer.json.gz"


@dataclass
class TokenizedPrompts:
    """Token ids (B, L) int64, mask (B, L) int64 (1 = real token), and how many tokens each prompt lost."""

    ids: torch.Tensor
    mask: torch.Tensor
    dropped: list[int]


class T5PromptTokenizer:
    """SentencePiece-unigram T5 tokenizer read from a ``tokenizer.json`` (or ``.json.gz``) file."""

    def __init__(self, path: str | Path | None = None):
        path = path or BUNDLED_TOKENIZER
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover - tokenizers is a declared dependency
            raise CheckpointError("Prompts need the 'tokenizers' package: pip install tokenizers") from exc
        try:
            if str(path).endswith(".gz"):
                with gzip.open(path, "rt", encoding="utf-8") as f:
                    self._tok = Tokenizer.from_str(f.read())
            else:
                self._tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # noqa: BLE001 - the library raises plain Exceptions for bad files
            raise CheckpointError(f"Cannot read the T5 tokenizer '{path}' ({exc}). Use the tokenizer.json of "
                                  f"google/flan-t5-xl (or of any T5 v1.1 model: same vocabulary).") from exc
        self.path = Path(path)
        self.eos_id = self._special("</s>")
        self.pad_id = self._special("<pad>")

    def _special(self, token: str) -> int:
        idx = self._tok.token_to_id(token)
        if idx is None:
            raise CheckpointError(f"'{self.path.name}' is not a T5 tokenizer (it has no '{token}' token).")
        return idx

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    def __call__(self, prompts: list[str], max_length: int = 120) -> TokenizedPrompts:
        """Tokenize, truncate to ``max_length - 1`` text tokens, append ``</s>``, right-pad with ``<pad>``."""
        encoded = self._tok.encode_batch(list(prompts), add_special_tokens=False)
        ids = torch.full((len(prompts), max_length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), max_length), dtype=torch.long)
        dropped = []
        for row, enc in enumerate(encoded):
            kept = enc.ids[: max_length - 1] + [self.eos_id]
            dropped.append(max(0, len(enc.ids) - (max_length - 1)))
            ids[row, : len(kept)] = torch.tensor(kept)
            mask[row, : len(kept)] = 1
        return TokenizedPrompts(ids, mask, dropped)

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids, skip_special_tokens=True)
