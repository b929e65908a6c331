"""Tokenizers of the ``clip`` text tower: one interface over two kinds.

- :class:`WordTokenizer`: the from-scratch model's own word vocabulary (lower-cased words and
  hyphenated compounds, built from the training captions), saved beside the weights as
  ``vocab.json``. Ids: 0 ``<pad>``, 1 ``<unk>``, 2 ``<bos>``, 3 ``<eos>``, then the words.
- :class:`HFTokenizer`: a pretrained checkpoint's own BPE tokenizer (``CLIPTokenizerFast``
  files in the checkpoint directory), saved beside the weights with ``save_pretrained``.

Both turn a list of texts into ``input_ids`` / ``attention_mask`` tensors of at most
``max_length`` tokens (the text tower's position limit): a longer text is truncated (its end
token kept) and counted in ``n_truncated`` so the caller can say so once; an empty text is a
ValueError naming its position.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from models.pretrained import write_atomic

VOCAB_NAME = "vocab.json"
SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")
PAD, UNK, BOS, EOS = range(4)
WORD_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


@dataclass
class Tokens:
    input_ids: torch.Tensor  # (B, L) long
    attention_mask: torch.Tensor  # (B, L) long, 1 on real tokens
    n_truncated: int  # texts cut at max_length


def words(text: str) -> list[str]:
    """Lower-cased words of ``text`` (hyphenated compounds kept whole: "long-sleeved")."""
    return WORD_RE.findall(text.lower())


def check_texts(texts: Iterable[str]) -> list[str]:
    """``texts`` as a list; ValueError naming the first empty (or non-string) one."""
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"text {i} is empty: a caption or query needs at least one word (got {text!r})")
    return texts


class WordTokenizer:
    """Word-level tokenizer over a fixed vocabulary; unknown words map to ``<unk>``."""

    kind = "words"
    pad_token_id, bos_token_id, eos_token_id = PAD, BOS, EOS

    def __init__(self, vocab: list[str]):
        if tuple(vocab[:4]) != SPECIALS:
            raise ValueError(f"a word vocabulary starts with {SPECIALS}, got {vocab[:4]}")
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 1, max_size: int = 20_000) -> WordTokenizer:
        """A vocabulary of the words seen at least ``min_count`` times (most frequent first,
        ties alphabetical), at most ``max_size`` entries in all."""
        counts = Counter(w for t in texts for w in words(t))
        kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls([*SPECIALS, *kept[: max_size - len(SPECIALS)]])

    def __len__(self) -> int:
        return len(self.vocab)

    def __call__(self, texts: Iterable[str], max_length: int) -> Tokens:
        texts = check_texts(texts)
        rows, n_truncated = [], 0
        for text in texts:
            ids = [BOS, *(self.index.get(w, UNK) for w in words(text)), EOS]
            if len(ids) > max_length:
                ids = [*ids[: max_length - 1], EOS]
                n_truncated += 1
            rows.append(ids)
        return _pad(rows, PAD, n_truncated)

    def save(self, directory: str | os.PathLike) -> None:
        text = json.dumps(self.vocab)
        write_atomic(Path(directory) / VOCAB_NAME, lambda f: f.write(text.encode("utf-8")))

    @classmethod
    def load(cls, directory: str | os.PathLike) -> WordTokenizer:
        path = Path(directory) / VOCAB_NAME
        if not path.is_file():
            raise FileNotFoundError(f"{directory}: no {VOCAB_NAME} (the clip model's word vocabulary)")
        return cls(json.loads(path.read_text()))


class HFTokenizer:
    """A checkpoint's Hugging Face CLIP tokenizer behind the same call as :class:`WordTokenizer`."""

    kind = "clip"

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.bos_token_id, self.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id

    @classmethod
    def load(cls, directory: str | os.PathLike) -> HFTokenizer:
        from transformers import AutoTokenizer

        try:
            return cls(AutoTokenizer.from_pretrained(str(directory), local_files_only=True))
        except (OSError, ValueError, TypeError) as e:
            raise ValueError(f"{directory}: no usable CLIP tokenizer files (vocab.json + merges.txt or "
                             f"tokenizer.json): {e}") from e  # fmt: skip

    def __len__(self) -> int:
        return len(self.tokenizer)

    def __call__(self, texts: Iterable[str], max_length: int) -> Tokens:
        texts = check_texts(texts)
        full = self.tokenizer(texts, add_special_tokens=True)["input_ids"]
        rows, n_truncated = [], 0
        for ids in full:
            if len(ids) > max_length:
                ids = [*ids[: max_length - 1], self.eos_token_id]
                n_truncated += 1
            rows.append(ids)
        return _pad(rows, self.pad_token_id, n_truncated)

    def save(self, directory: str | os.PathLike) -> None:
        self.tokenizer.save_pretrained(str(directory))


def _pad(rows: list[list[int]], pad: int, n_truncated: int) -> Tokens:
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return Tokens(ids, mask, n_truncated)


def load_tokenizer(directory: str | os.PathLike, kind: str):
    """The tokenizer saved in a model directory: ``kind`` "words" or "clip"."""
    if kind == "words":
        return WordTokenizer.load(directory)
    if kind == "clip":
        return HFTokenizer.load(directory)
    raise ValueError(f"unknown tokenizer kind {kind!r} (words or clip)")
