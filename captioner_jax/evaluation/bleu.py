"""Vectorized corpus BLEU-1..4 exactly as pycocoevalcap's `Bleu(4)` with option "closest".

Per pair (one hypothesis, k >= 1 references) the scorer keeps: testlen (hypothesis tokens),
reflen (the reference length closest to testlen, ties -> the shorter), guess[n] =
max(0, testlen - n + 1) and correct[n] = sum over hypothesis n-grams of
min(count_hyp, max over references of count_ref). A "corpus" sums these over its pairs and
computes cumulative BLEU-N = prod_{n<=N}((correct_n + 1e-15) / (guess_n + 1e-9))^(1/N) times
the brevity penalty exp(1 - 1/ratio) when ratio = (testlen + 1e-15)/(reflen + 1e-9) < 1.
There is no other smoothing: a corpus without a 4-gram match gets a tiny, non-zero BLEU-4.
"""
from __future__ import annotations

import numpy as np

from captioner_jax.evaluation.ngrams import (
    BLOCK_ENTRIES,
    MAX_N,
    NgramTable,
    entry_blocks,
    match_entries,
    match_sorted_entries,
    pair_entries,
)

_TINY = 1e-15
_SMALL = 1e-9


def bleu_pair_stats(
    table: NgramTable, hyp: np.ndarray, ref: np.ndarray, ref_pair: np.ndarray | None = None,
    block_entries: int = BLOCK_ENTRIES,
) -> np.ndarray:
    """Sufficient statistics per pair.

    hyp: [P] sentence ids of the hypotheses in `table`.
    ref: [R] sentence ids of the references; `ref_pair` [R] says which pair each belongs to
      (None: exactly one reference per pair, R == P).
    Returns float64 [P, 2 + 2 * MAX_N]: testlen, reflen, guess_1..4, correct_1..4.
    """
    hyp = np.asarray(hyp, np.int64)
    ref = np.asarray(ref, np.int64)
    num_pairs = len(hyp)
    single_reference = ref_pair is None
    ref_pair = np.arange(num_pairs) if ref_pair is None else np.asarray(ref_pair, np.int64)
    k = max(table.num_ngrams, 1)
    stats = np.zeros((num_pairs, 2 + 2 * MAX_N), np.float64)
    testlen = table.lengths[hyp]
    stats[:, 0] = testlen
    # reflen "closest": min over references of (|l - testlen|, l) lexicographically.
    ref_len = table.lengths[ref]
    dist = np.abs(ref_len - testlen[ref_pair])
    best = np.full(num_pairs, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(best, ref_pair, dist * (1 << 32) + ref_len)
    stats[:, 1] = best & ((1 << 32) - 1)
    for n in range(MAX_N):
        stats[:, 2 + n] = np.maximum(0, testlen - n)
    if single_reference:
        stats[:, 2 + MAX_N:] = _clipped_matches_one_reference(table, hyp, ref, block_entries)
        return stats
    # Max reference count per (pair, n-gram).
    r_pair_idx, r_entry = pair_entries(table, ref)
    r_keys = ref_pair[r_pair_idx] * k + table.ngram_ids[r_entry]
    order = np.argsort(r_keys, kind="stable")
    r_keys = r_keys[order]
    r_counts = table.counts[r_entry][order]
    if len(r_keys):
        starts = np.flatnonzero(np.r_[True, r_keys[1:] != r_keys[:-1]])
        r_keys = r_keys[starts]
        r_counts = np.maximum.reduceat(r_counts, starts)
    h_pair, h_entry = pair_entries(table, hyp)
    h_keys = h_pair * k + table.ngram_ids[h_entry]
    ia, ib = match_entries(h_keys, r_keys)
    clipped = np.minimum(table.counts[h_entry[ia]], r_counts[ib])
    # bincount adds in input order into zeros, as np.add.at would (same sums), faster.
    stats[:, 2 + MAX_N:] = np.bincount(
        h_pair[ia] * MAX_N + table.orders[h_entry[ia]], weights=clipped,
        minlength=num_pairs * MAX_N)[:num_pairs * MAX_N].reshape(num_pairs, MAX_N)
    return stats


def _clipped_matches_one_reference(table: NgramTable, hyp: np.ndarray, ref: np.ndarray,
                                   block_entries: int = BLOCK_ENTRIES) -> np.ndarray:
    """correct_1..4 [P, MAX_N] when pair p has the one reference ref[p]: sum over the
    n-grams of hyp[p] of min(count in hyp[p], count in ref[p]). The (pair, n-gram) keys of
    each side are then sorted and unique already (no max over references to take), so the
    pairs are joined in blocks of about `block_entries` hypothesis entries by binary search;
    each (pair, n) sum adds its terms in the same order as one pass would (the same bits)."""
    num_pairs = len(hyp)
    k = max(table.num_ngrams, 1)
    correct = np.empty((num_pairs, MAX_N), np.float64)
    for lo, hi, _ in entry_blocks(hyp, table, block_entries):
        h_pair, h_entry = pair_entries(table, hyp[lo:hi])
        r_pair, r_entry = pair_entries(table, ref[lo:hi])
        ia, ib = match_sorted_entries(h_pair * k + table.ngram_ids[h_entry],
                                      r_pair * k + table.ngram_ids[r_entry])
        clipped = np.minimum(table.counts[h_entry[ia]], table.counts[r_entry[ib]])
        correct[lo:hi] = np.bincount(
            h_pair[ia] * MAX_N + table.orders[h_entry[ia]], weights=clipped,
            minlength=(hi - lo) * MAX_N)[:(hi - lo) * MAX_N].reshape(hi - lo, MAX_N)
    return correct


def bleu_from_stats(stats: np.ndarray) -> np.ndarray:
    """Cumulative BLEU-1..4 of corpora from summed statistics [..., 10] -> [..., 4]."""
    stats = np.asarray(stats, np.float64)
    testlen, reflen = stats[..., 0], stats[..., 1]
    guess, correct = stats[..., 2:2 + MAX_N], stats[..., 2 + MAX_N:]
    log_prec = np.log((correct + _TINY) / (guess + _SMALL))
    cum = np.cumsum(log_prec, axis=-1) / np.arange(1, MAX_N + 1)
    bleus = np.exp(cum)
    ratio = (testlen + _TINY) / (reflen + _SMALL)
    with np.errstate(over="ignore", under="ignore", divide="ignore"):
        penalty = np.where(ratio < 1, np.exp(1 - 1 / ratio), 1.0)
    return bleus * penalty[..., None]


def grouped_bleu(stats: np.ndarray, group: np.ndarray, num_groups: int) -> np.ndarray:
    """BLEU-1..4 [num_groups, 4] of each group's pairs (stats [P, 10], group [P])."""
    group = np.asarray(group, np.int64)
    sums = np.stack([np.bincount(group, weights=col, minlength=num_groups)[:num_groups]
                     for col in np.asarray(stats, np.float64).T], axis=1) if len(stats) else \
        np.zeros((num_groups, stats.shape[1]), np.float64)
    return bleu_from_stats(sums)
