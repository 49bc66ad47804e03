"""Inverse document frequency of caption words, for the SA-TSP ensemble's selection rule.

SA-TSP picks, per proposal, the member caption with (1) the most unique semantic concepts and
(2) the highest maximum IDF over its unigrams. The report does not define the IDF; ours:
- a document is one training sentence; words are PDVC's encode-time tokens (lowercase,
  punctuation removed: `caption_vocab.encode_tokens`), counted once per sentence;
- idf(w) = ln(N / df(w)) for a word seen in df(w) of the N training sentences;
- idf(w) = 0 for a word never seen in training: the captioner's vocabulary comes from the
  training captions, so the only unseen word it can emit is `UNK`, which must not win.
"""
from __future__ import annotations

import dataclasses
import math
import os
from collections import Counter
from collections.abc import Iterable

from data_prep.annotations.errors import read_json_file
from data_prep.infra.atomic_files import atomic_write_json
from data_prep.text.caption_vocab import encode_tokens


@dataclasses.dataclass
class IdfTable:
    """Document frequencies over `num_documents` sentences."""

    num_documents: int
    document_frequency: dict[str, int]

    def idf(self, word: str) -> float:
        """ln(N / df) of a lowercase word; 0 for words not seen in training."""
        df = self.document_frequency.get(word.lower(), 0)
        return math.log(self.num_documents / df) if df else 0.0

    def unigram_idfs(self, caption: str) -> list[float]:
        return [self.idf(w) for w in encode_tokens(caption)]

    def max_idf(self, caption: str) -> float:
        """Maximum IDF over the caption's unigrams (0 for an empty caption)."""
        return max(self.unigram_idfs(caption), default=0.0)

    def to_json(self) -> dict:
        return {"format": "idf", "definition": "ln(num_documents / document_frequency)",
                "num_documents": self.num_documents,
                "document_frequency": dict(sorted(self.document_frequency.items()))}

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> IdfTable:
        raw = read_json_file(path)
        if not isinstance(raw, dict) or "document_frequency" not in raw:
            raise ValueError(f"{path}: not an IDF table (no 'document_frequency' field)")
        n = int(raw["num_documents"])
        df = {str(k): int(v) for k, v in raw["document_frequency"].items()}
        bad = [k for k, v in df.items() if not 0 < v <= n]
        if bad:
            raise ValueError(f"{path}: field 'document_frequency': counts outside [1, {n}] "
                             f"for {bad[:5]}")
        return cls(n, df)


def build_idf(sentences: Iterable[str]) -> IdfTable:
    """Document frequencies of the words of `sentences` (one document per sentence)."""
    df: Counter[str] = Counter()
    n = 0
    for sentence in sentences:
        n += 1
        df.update(set(encode_tokens(sentence)))
    if n == 0:
        raise ValueError("cannot build an IDF table from zero sentences")
    return IdfTable(n, dict(df))
