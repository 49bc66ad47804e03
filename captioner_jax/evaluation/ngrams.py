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
    ngram_ids: [num_entries] int64, id of the n-gram (0 .. num_ngrams - 1).
    counts: [num_entries] float64, occurrences of the n-gram in the sentence (tf).
    orders: [num_entries] int64, n - 1 (0 for unigrams ... 3 for 4-grams).
    lengths: [num_sentences] int64, number of tokens.
    gram_words: [num_ngrams, MAX_N] int64 word ids of each n-gram (-1 padded);
    words: the word list (index = word id). `ngrams` gives the n-grams as word tuples.
    """

    offsets: np.ndarray
    ngram_ids: np.ndarray
    counts: np.ndarray
    orders: np.ndarray
    lengths: np.ndarray
    gram_words: np.ndarray
    words: list

    @property
    def num_ngrams(self) -> int:
        return len(self.gram_words)

    @property
    def ngrams(self) -> list[tuple[str, ...]]:
        """n-gram id -> tuple of words (pycocoevalcap's dictionary keys)."""
        return [tuple(self.words[w] for w in row if w >= 0) for row in self.gram_words.tolist()]

    @classmethod
    def build(cls, sentences: Sequence[str], n: int = MAX_N) -> NgramTable:
        """Vectorized: tokens -> ids; every n-gram window -> a row of ids; unique rows."""
        vocab: dict[str, int] = {}
        token_lists = [s.split() for s in sentences]
        lengths = np.asarray([len(t) for t in token_lists], np.int64)
        flat = np.asarray([vocab.setdefault(w, len(vocab)) for t in token_lists for w in t],
                          np.int64)
        sent_of_tok = np.repeat(np.arange(len(sentences), dtype=np.int64), lengths)
        pos = np.arange(len(flat), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths,
                                                              lengths)
        rows, sents = [], []
        for k in range(1, n + 1):
            ok = pos + k <= lengths[sent_of_tok]  # window of k tokens fits in the sentence
            starts = np.flatnonzero(ok)
            row = np.full((len(starts), MAX_N), -1, np.int64)
            for j in range(k):
                row[:, j] = flat[starts + j]
            rows.append(row)
            sents.append(sent_of_tok[starts])
        grams = np.concatenate(rows) if rows else np.zeros((0, MAX_N), np.int64)
        sent = np.concatenate(sents) if sents else np.zeros((0,), np.int64)
        base = len(vocab) + 1
        if len(grams) and base ** MAX_N < 2**62:
            # One int64 per n-gram (ids + 1 in base |V| + 1): a 1-D unique is much faster.
            code = np.zeros(len(grams), np.int64)
            for j in range(MAX_N):
                code = code * base + (grams[:, j] + 1)
            _, first, gram_id = np.unique(code, return_index=True, return_inverse=True)
            gram_words = grams[first]
        elif len(grams):
            gram_words, gram_id = np.unique(grams, axis=0, return_inverse=True)
            gram_id = gram_id.reshape(-1)
        else:
            gram_words, gram_id = np.zeros((0, MAX_N), np.int64), np.zeros((0,), np.int64)
        key = sent * max(len(gram_words), 1) + gram_id
        ukey, counts = np.unique(key, return_counts=True)  # sorted: by sentence, then n-gram
        ent_sent = ukey // max(len(gram_words), 1)
        ngram_ids = ukey % max(len(gram_words), 1)
        offsets = np.zeros(len(sentences) + 1, np.int64)
        offsets[1:] = np.cumsum(np.bincount(ent_sent, minlength=len(sentences)))
        orders = ((gram_words >= 0).sum(axis=1) - 1) if len(gram_words) else \
            np.zeros((0,), np.int64)
        return cls(
            offsets=offsets, ngram_ids=ngram_ids.astype(np.int64),
            counts=counts.astype(np.float64), orders=orders[ngram_ids].astype(np.int64),
            lengths=lengths, gram_words=gram_words, words=list(vocab),
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
