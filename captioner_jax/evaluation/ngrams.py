"""Sparse n-gram counts of tokenized sentences, shared by the vectorized BLEU and CIDEr-D.

A `NgramTable` holds, for a list of sentences, every distinct 1..4-gram of each sentence with
its count, in CSR layout (`offsets[s]:offsets[s+1]` are sentence s's entries). Tokens are
`sentence.split()` (any whitespace), as pycocoevalcap's `precook` splits them.

`pair_entries` expands the entries of many (pair -> sentence) references at once and
`match_entries` joins two such expansions on (pair, n-gram): the building blocks for clipped
n-gram matches (BLEU) and tf-idf dot products (CIDEr-D) without Python loops over pairs.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAX_N = 4


@dataclass(frozen=True)
class NgramTable:
    """n-gram entries of `num_sentences` sentences.

    offsets: [num_sentences + 1] int64, CSR row pointers into the entry arrays.
    ngram_ids: [num_entries] int64, id of the n-gram (ids index `ngrams`).
    counts: [num_entries] float64, occurrences of the n-gram in the sentence (tf).
    orders: [num_entries] int64, n - 1 (0 for unigrams ... 3 for 4-grams).
    lengths: [num_sentences] int64, number of tokens.
    ngrams: list of n-gram tuples, index = id.
    """

    offsets: np.ndarray
    ngram_ids: np.ndarray
    counts: np.ndarray
    orders: np.ndarray
    lengths: np.ndarray
    ngrams: list

    @property
    def num_ngrams(self) -> int:
        return len(self.ngrams)

    @classmethod
    def build(cls, sentences: Sequence[str], n: int = MAX_N) -> NgramTable:
        vocab: dict[tuple, int] = {}
        offsets = [0]
        ids: list[int] = []
        counts: list[int] = []
        lengths = []
        for sentence in sentences:
            words = sentence.split()
            lengths.append(len(words))
            local: dict[int, int] = {}
            for k in range(1, n + 1):
                for i in range(len(words) - k + 1):
                    gram = tuple(words[i:i + k])
                    gid = vocab.get(gram)
                    if gid is None:
                        gid = vocab[gram] = len(vocab)
                    local[gid] = local.get(gid, 0) + 1
            ids.extend(local.keys())
            counts.extend(local.values())
            offsets.append(len(ids))
        ngrams = list(vocab)
        ngram_ids = np.asarray(ids, np.int64)
        gram_order = np.asarray([len(g) - 1 for g in ngrams], np.int64)
        return cls(
            offsets=np.asarray(offsets, np.int64),
            ngram_ids=ngram_ids,
            counts=np.asarray(counts, np.float64),
            orders=gram_order[ngram_ids] if len(ngram_ids) else np.zeros((0,), np.int64),
            lengths=np.asarray(lengths, np.int64),
            ngrams=ngrams,
        )


def pair_entries(table: NgramTable, sentence_of_pair: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expands entries for pairs: returns (pair index per entry, entry index into the table).

    sentence_of_pair: [num_pairs] sentence ids. Entries of pair p are those of its sentence.
    """
    sentence_of_pair = np.asarray(sentence_of_pair, np.int64)
    starts = table.offsets[sentence_of_pair]
    sizes = table.offsets[sentence_of_pair + 1] - starts
    total = int(sizes.sum())
    pair_index = np.repeat(np.arange(len(sentence_of_pair), dtype=np.int64), sizes)
    first = np.cumsum(sizes) - sizes
    entry_index = np.repeat(starts - first, sizes) + np.arange(total, dtype=np.int64)
    return pair_index, entry_index


def match_entries(
    keys_a: np.ndarray, keys_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (ia, ib) with keys_a[ia] == keys_b[ib]; keys unique within each side."""
    _, ia, ib = np.intersect1d(keys_a, keys_b, assume_unique=True, return_indices=True)
    return ia, ib
