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
# Expanded n-gram entries per block where a join runs pair block by pair block (8 MiB per
# int64 array): bounds the memory of the largest joins of a full val_1 + val_2 evaluation
# (5-8 M entries), not their results.
BLOCK_ENTRIES = 1 << 20


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
        """Vectorized: tokens -> ids; every n-gram window -> one int64 code of its ids (unique
        codes = distinct n-grams), or, for vocabularies too large for such a code, a row of
        ids (unique rows). Peak memory on a full val_1 + val_2 evaluation's 52k sentences:
        329 MiB (490 MiB when every window was a row of ids)."""
        vocab: dict[str, int] = {}
        token_lists = [s.split() for s in sentences]
        lengths = np.asarray([len(t) for t in token_lists], np.int64)
        flat = np.asarray([vocab.setdefault(w, len(vocab)) for t in token_lists for w in t],
                          np.int64)
        sent_of_tok = np.repeat(np.arange(len(sentences), dtype=np.int64), lengths)
        pos = np.arange(len(flat), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths,
                                                              lengths)
        # Every window of k tokens that fits in its sentence, order by order.
        windows = [np.flatnonzero(pos + k <= lengths[sent_of_tok]) for k in range(1, n + 1)]
        sent = np.concatenate([sent_of_tok[w] for w in windows]) if windows else \
            np.zeros((0,), np.int64)
        base = len(vocab) + 1
        if len(sent) and base ** MAX_N < 2**62:
            # One int64 per n-gram (ids + 1 in base |V| + 1, 0 past its end): a 1-D unique is
            # much faster, and no [windows, MAX_N] matrix is made.
            codes = []
            for k, starts in enumerate(windows, 1):
                code = np.zeros(len(starts), np.int64)
                for j in range(MAX_N):
                    code *= base
                    if j < k:
                        code += flat[starts + j] + 1
                codes.append(code)
            _, first, gram_id = np.unique(np.concatenate(codes), return_index=True,
                                          return_inverse=True)
            del codes
            # The words of each distinct n-gram, from its first window.
            win_order = np.concatenate([np.full(len(w), k, np.int64)
                                        for k, w in enumerate(windows, 1)])[first]
            win_start = np.concatenate(windows)[first]
            gram_words = np.full((len(first), MAX_N), -1, np.int64)
            for j in range(MAX_N):
                has = win_order > j
                gram_words[has, j] = flat[win_start[has] + j]
        elif len(sent):
            grams = np.full((len(sent), MAX_N), -1, np.int64)
            row = 0
            for k, starts in enumerate(windows, 1):
                for j in range(k):
                    grams[row:row + len(starts), j] = flat[starts + j]
                row += len(starts)
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


def entry_blocks(sentence_of_pair: np.ndarray, table: NgramTable, block_entries: int):
    """Consecutive pair ranges [lo, hi) of about `block_entries` expanded entries each (at
    least one pair): yields (lo, hi, index of the range's first entry in the expansion of all
    pairs). Every pair lies in one block, so per-pair sums come out as in one pass."""
    sentence_of_pair = np.asarray(sentence_of_pair, np.int64)
    sizes = table.offsets[sentence_of_pair + 1] - table.offsets[sentence_of_pair]
    ends = np.cumsum(sizes)
    lo = 0
    while lo < len(sentence_of_pair):
        first = int(ends[lo] - sizes[lo])
        hi = max(lo + 1, int(np.searchsorted(ends, first + block_entries, side="right")))
        yield lo, hi, first
        lo = hi


def match_entries(
    keys_a: np.ndarray, keys_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (ia, ib) with keys_a[ia] == keys_b[ib]; keys unique within each side."""
    _, ia, ib = np.intersect1d(keys_a, keys_b, assume_unique=True, return_indices=True)
    return ia, ib


def match_sorted_entries(
    keys_a: np.ndarray, keys_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """`match_entries` for keys strictly increasing on both sides (e.g. pair index * K +
    n-gram id over `pair_entries` of sorted pairs): the same (ia, ib), found by binary search
    of a in b, with a few temporaries of len(a) instead of the sort of both sides together."""
    if len(keys_a) == 0 or len(keys_b) == 0:
        return np.zeros((0,), np.int64), np.zeros((0,), np.int64)
    pos = np.searchsorted(keys_b, keys_a)
    np.minimum(pos, len(keys_b) - 1, out=pos)
    ia = np.flatnonzero(keys_b[pos] == keys_a)
    return ia, pos[ia]
