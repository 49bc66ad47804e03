"""The caption vocabulary, compatible with PDVC's (`misc/build_vocab.py`, `Translator`).

File format (PDVC's `vocabulary_activitynet.json`):
  `{"ix_to_word": {"1": "a", ...}, "word_to_ix": {"a": 1, ...}}`
Ids start at 1 in first-occurrence order of the counted words; then `<bos>`, `<eos>` and
finally `UNK` (so `UNK` = vocab size). Id 0 is not in the file: the captioner uses it as
BOS, EOS and padding, and its output layer has vocab size + 1 classes.

Two tokenisations, each matching PDVC exactly:
- building (`build_tokens`): the marks `, : ! _ ; - . ? / "` and the two-character
  sequence backslash-n and backslash are replaced by a space in that order, double spaces are
  collapsed three times after each mark, the sentence is stripped, lowercased and split on
  single spaces (so a leftover empty string counts as a word, as in PDVC);
- encoding (`encode`): the same marks become spaces, then lowercase and split on any whitespace.

Deliberate default difference: PDVC built its ActivityNet vocabulary from train + val_1 +
val_2; `data_prep.text.stage` builds from the training captions only by default, so that
no validation words leak into the model (pass the val files to reproduce PDVC's file).
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence

import numpy as np

from data_prep.annotations.errors import read_json_file
from data_prep.infra.atomic_files import atomic_write_json

# PDVC's punctuation marks, in its order (the escaped newline before the backslash).
PUNCTUATION_MARKS = (",", ":", "!", "_", ";", "-", ".", "?", "/", '"', "\\n", "\\")
BOS_WORD, EOS_WORD, UNK_WORD = "<bos>", "<eos>", "UNK"
PAD_ID = 0  # also BOS and EOS inside token sequences


def build_tokens(sentence: str) -> list[str]:
    """PDVC's build-time tokenisation of a raw sentence (see the module docstring)."""
    for mark in PUNCTUATION_MARKS:
        sentence = sentence.replace(mark, " ")
        for _ in range(3):
            sentence = sentence.replace("  ", " ")
    return sentence.strip().lower().split(" ")


def encode_tokens(sentence: str) -> list[str]:
    """PDVC's encode-time tokenisation (Translator.translate)."""
    for mark in PUNCTUATION_MARKS:
        sentence = sentence.replace(mark, " ")
    return sentence.lower().split()


@dataclasses.dataclass
class CaptionVocab:
    """Word <-> id maps. `words[i]` has id i + 1; the last word is `UNK`."""

    words: list[str]

    def __post_init__(self):
        if not self.words or self.words[-1] != UNK_WORD:
            raise ValueError("a caption vocabulary must end with 'UNK'")
        self.word_to_ix = {w: i + 1 for i, w in enumerate(self.words)}
        if len(self.word_to_ix) != len(self.words):
            raise ValueError("duplicate words in the caption vocabulary")

    @property
    def size(self) -> int:
        """Number of entries (PDVC's `vocab_size`); the output layer has size + 1 classes."""
        return len(self.words)

    @property
    def unk_id(self) -> int:
        return self.word_to_ix[UNK_WORD]

    def word(self, ix: int) -> str:
        if not 1 <= ix <= len(self.words):
            raise KeyError(f"token id {ix} outside the vocabulary [1, {len(self.words)}]")
        return self.words[ix - 1]

    def encode(self, sentence: str, max_len: int, pad: bool = True) -> np.ndarray:
        """Token ids `[0, w_1, ..., w_k, 0]` with k <= max_len - 2, as PDVC's `translate`.

        Unknown words map to `UNK`. With `pad`, zero-padded to length `max_len`.

        Returns:
          int32 [max_len] (or [k + 2] without padding).
        """
        if max_len < 2:
            raise ValueError(f"max_len must be >= 2 (BOS and EOS), got {max_len}")
        unk = self.unk_id
        ids = [self.word_to_ix.get(w, unk) for w in encode_tokens(sentence)][: max_len - 2]
        out = np.zeros(max_len if pad else len(ids) + 2, np.int32)
        out[1 : len(ids) + 1] = ids
        return out

    def encode_batch(self, sentences: Sequence[str], max_len: int) -> np.ndarray:
        """int32 [len(sentences), max_len], each row as `encode`."""
        out = np.zeros((len(sentences), max_len), np.int32)
        for i, s in enumerate(sentences):
            out[i] = self.encode(s, max_len)
        return out

    def decode(self, ids: Iterable[int], skip_bos: bool = False) -> str:
        """Words up to the first 0, joined by spaces, plus "." (PDVC's `rtranslate`).

        Args:
          ids: generated token ids (no leading BOS), e.g. a decoder's output row.
          skip_bos: drop one leading 0 first (for sequences made by `encode`).
        """
        ids = [int(i) for i in ids]
        if skip_bos and ids and ids[0] == PAD_ID:
            ids = ids[1:]
        words = []
        for ix in ids:
            if ix == PAD_ID:
                break
            words.append(self.word(ix))
        return " ".join(words) + "." if words else ""

    def to_json(self) -> dict:
        return {"ix_to_word": {str(i + 1): w for i, w in enumerate(self.words)},
                "word_to_ix": dict(self.word_to_ix)}

    def save(self, path: str | os.PathLike) -> None:
        """Writes PDVC's JSON format atomically."""
        atomic_write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> CaptionVocab:
        """Reads PDVC's JSON format, checking that both maps agree."""
        raw = read_json_file(path)
        if not isinstance(raw, dict) or "ix_to_word" not in raw or "word_to_ix" not in raw:
            raise ValueError(f"{path}: expected keys 'ix_to_word' and 'word_to_ix'")
        itow = {int(k): v for k, v in raw["ix_to_word"].items()}
        if sorted(itow) != list(range(1, len(itow) + 1)):
            raise ValueError(f"{path}: field 'ix_to_word': ids are not 1..{len(itow)}")
        try:
            vocab = cls([itow[i] for i in range(1, len(itow) + 1)])
        except ValueError as e:
            raise ValueError(f"{path}: field 'ix_to_word': {e}") from None
        if vocab.word_to_ix != {w: int(i) for w, i in raw["word_to_ix"].items()}:
            raise ValueError(f"{path}: 'ix_to_word' and 'word_to_ix' disagree")
        return vocab


def count_words(sentences: Iterable[str]) -> dict[str, int]:
    """Word counts with PDVC's build tokenisation, in first-occurrence order."""
    counts: dict[str, int] = {}
    for sentence in sentences:
        for word in build_tokens(sentence):
            counts[word] = counts.get(word, 0) + 1
    return counts


def build_caption_vocab(sentences: Iterable[str], count_threshold: int = 4) -> CaptionVocab:
    """Words seen at least `count_threshold` times, then `<bos>`, `<eos>`, `UNK` (PDVC)."""
    counts = count_words(sentences)
    # PDVC sets the counts of <bos>/<eos> to 1e10 after counting, so they always pass the
    # threshold and keep a word's position if a sentence contained them literally.
    counts[BOS_WORD] = counts[EOS_WORD] = 10**10
    words = [w for w, n in counts.items() if n >= count_threshold]
    return CaptionVocab(words + [UNK_WORD])
