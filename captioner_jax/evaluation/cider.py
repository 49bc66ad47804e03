"""Vectorized CIDEr-D, exactly pycocoevalcap's `Cider` (n = 1..4, sigma = 6), two ways:

* `grouped_cider`: the official dense-captioning use, where each *group* (one video at one
  tIoU threshold) is its own corpus: document frequencies and log(N) come from the group's
  own N pair references (duplicates counted).
* `CiderD`: a corpus-level scorer whose document frequencies are precomputed once (e.g. from
  the training captions) — what SCST rewards need. Built from the same references it scores,
  it equals pycocoevalcap's `Cider().compute_score` on them.

Per item with hypothesis h and references r_1..r_k, for each n:
  w(g) = tf(g) * (log N - log max(1, df(g)))
  sim_n(h, r) = sum_g min(w_h(g), w_r(g)) * w_r(g) / (|w_h| |w_r|)  (0 if a norm is 0)
                * exp(-delta^2 / (2 sigma^2)),
  delta = (#bigrams of h) - (#bigrams of r)   # coco counts only n == 2 entries as "length"
  score = 10 * mean_n(sum_j sim_n(h, r_j)) / k.
"""
from __future__ import annotations

from collections.abc import Sequence

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

SIGMA = 6.0


def _scatter_add(flat_index: np.ndarray, values: np.ndarray, shape: tuple) -> np.ndarray:
    """zeros(shape) with values[i] added at flat_index[i], in order (== np.add.at)."""
    size = int(np.prod(shape))
    return np.bincount(flat_index, weights=values, minlength=size)[:size].reshape(shape)


def _cider_core(
    table: NgramTable,
    hyp: np.ndarray,
    ref: np.ndarray,
    ref_item: np.ndarray,
    df_hyp: np.ndarray,
    df_ref: np.ndarray,
    log_n_item: np.ndarray,
    h_pair: np.ndarray,
    h_entry: np.ndarray,
    r_pair: np.ndarray,
    r_entry: np.ndarray,
) -> np.ndarray:
    """CIDEr-D per item given document frequencies of every expanded entry.

    hyp [I] sentence ids; ref [R] sentence ids with ref_item [R] their item; (h_pair, h_entry)
    = pair_entries(table, hyp); (r_pair, r_entry) = pair_entries(table, ref); df_hyp / df_ref
    the document frequency of each expanded entry; log_n_item [I] = log(N) of the item's corpus.
    """
    num_items, num_refs = len(hyp), len(ref)
    k = max(table.num_ngrams, 1)
    w_h = table.counts[h_entry] * (log_n_item[h_pair] - np.log(np.maximum(1.0, df_hyp)))
    w_r = table.counts[r_entry] * (
        log_n_item[ref_item[r_pair]] - np.log(np.maximum(1.0, df_ref))
    )
    o_h = table.orders[h_entry]
    o_r = table.orders[r_entry]
    # bincount adds in input order, as np.add.at does (same sums to the bit), much faster.
    norm_h = _scatter_add(h_pair * MAX_N + o_h, w_h**2, (num_items, MAX_N))
    norm_r = _scatter_add(r_pair * MAX_N + o_r, w_r**2, (num_refs, MAX_N))
    norm_h, norm_r = np.sqrt(norm_h), np.sqrt(norm_r)
    # Join hypothesis entries with each of its references' entries on (reference, n-gram).
    # Items have few references, so expand hypothesis entries per reference.
    refs_per_item = np.bincount(ref_item, minlength=num_items)
    if np.all(refs_per_item == 1):
        ref_of_item = np.empty(num_items, np.int64)
        ref_of_item[ref_item] = np.arange(num_refs)
        hk_ref = ref_of_item[h_pair]
        hk_idx = np.arange(len(h_pair))
    else:
        # For every reference j, the hypothesis entries of its item.
        order = np.argsort(ref_item, kind="stable")
        counts_h = np.bincount(h_pair, minlength=num_items)
        starts_h = np.cumsum(counts_h) - counts_h  # h_pair is sorted (pair_entries order)
        reps = counts_h[ref_item[order]]
        hk_ref = np.repeat(order, reps)
        base = np.repeat(starts_h[ref_item[order]], reps)
        within = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
        hk_idx = base + within
    h_keys = hk_ref * k + table.ngram_ids[h_entry[hk_idx]]
    r_keys = r_pair * k + table.ngram_ids[r_entry]
    ia, ib = match_entries(h_keys, r_keys)
    wh, wr = w_h[hk_idx[ia]], w_r[ib]
    dot = _scatter_add(r_pair[ib] * MAX_N + o_r[ib], np.minimum(wh, wr) * wr,
                       (num_refs, MAX_N))
    denom = norm_h[ref_item] * norm_r
    with np.errstate(invalid="ignore", divide="ignore"):
        val = np.where(denom != 0, dot / np.where(denom != 0, denom, 1.0), dot)
    bigrams_h = np.maximum(table.lengths[hyp] - 1, 0)
    bigrams_r = np.maximum(table.lengths[ref] - 1, 0)
    delta = (bigrams_h[ref_item] - bigrams_r).astype(np.float64)
    val = val * np.e ** (-(delta**2) / (2 * SIGMA**2))[:, None]
    per_ref = val.mean(axis=1)
    total = np.bincount(ref_item, weights=per_ref, minlength=num_items)
    return total / np.maximum(refs_per_item, 1) * 10.0


def _hypothesis_weights(
    table: NgramTable, hg_hyp: np.ndarray, hg_group: np.ndarray, df_keys: np.ndarray,
    df_counts: np.ndarray, log_n: np.ndarray, block_entries: int = BLOCK_ENTRIES,
) -> tuple[np.ndarray, np.ndarray]:
    """tf-idf weights of the distinct (hypothesis, group)s' n-gram entries and their norms.

    hg_hyp, hg_group [HG]: sentence and group of each; df_keys (sorted, unique: group * K +
    n-gram id) with df_counts: the groups' document frequencies; log_n [groups] = log N.
    Returns w_h [E] (the entries of `pair_entries(table, hg_hyp)`, in its order) and
    norm_h [HG, MAX_N] = sqrt(sum of w_h^2 per n). Computed in blocks of whole (hypothesis,
    group)s of about `block_entries` entries: each norm adds its terms in the same order as
    one pass over all entries would, so the values are the same to the bit, without a dozen
    temporaries of E elements at once (E = 8 M on a full val_1 + val_2 evaluation).
    """
    k = max(table.num_ngrams, 1)
    sizes = table.offsets[hg_hyp + 1] - table.offsets[hg_hyp]
    w_h = np.empty(int(sizes.sum()), np.float64)
    norm_sq = np.empty((len(hg_hyp), MAX_N), np.float64)
    for lo, hi, first in entry_blocks(hg_hyp, table, block_entries):
        h_hg, h_entry = pair_entries(table, hg_hyp[lo:hi])
        h_keys = hg_group[lo:hi][h_hg] * k + table.ngram_ids[h_entry]
        if len(df_keys):
            pos = np.minimum(np.searchsorted(df_keys, h_keys), len(df_keys) - 1)
            df_h = np.where(df_keys[pos] == h_keys, df_counts[pos], 0.0)
        else:  # no reference has an n-gram
            df_h = np.zeros(len(h_keys))
        w = table.counts[h_entry] * (log_n[hg_group[lo:hi]][h_hg]
                                     - np.log(np.maximum(1.0, df_h)))
        w_h[first:first + len(w)] = w
        norm_sq[lo:hi] = _scatter_add(h_hg * MAX_N + table.orders[h_entry], w**2,
                                      (hi - lo, MAX_N))
    return w_h, np.sqrt(norm_sq)


def _shared_entries(
    table: NgramTable, sp_hyp: np.ndarray, sp_ref: np.ndarray, block_entries: int = BLOCK_ENTRIES,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The n-grams each sentence pair (sp_hyp[i], sp_ref[i]) shares: (pair index, entry of the
    hypothesis, entry of the reference) per shared n-gram, pair by pair, in n-gram id order
    within a pair. Joined in blocks of about `block_entries` hypothesis entries (the same
    result as one join over all pairs)."""
    k = max(table.num_ngrams, 1)
    out_sp, out_h, out_r = [], [], []
    for lo, hi, _ in entry_blocks(sp_hyp, table, block_entries):
        a_sp, a_entry = pair_entries(table, sp_hyp[lo:hi])
        b_sp, b_entry = pair_entries(table, sp_ref[lo:hi])
        ia, ib = match_sorted_entries(a_sp * k + table.ngram_ids[a_entry],
                                      b_sp * k + table.ngram_ids[b_entry])
        out_sp.append(a_sp[ia] + lo)
        out_h.append(a_entry[ia])
        out_r.append(b_entry[ib])
    if not out_sp:
        empty = np.zeros((0,), np.int64)
        return empty, empty, empty
    return np.concatenate(out_sp), np.concatenate(out_h), np.concatenate(out_r)


def grouped_cider(
    table: NgramTable, hyp: np.ndarray, ref: np.ndarray, group: np.ndarray, num_groups: int,
    block_entries: int = BLOCK_ENTRIES,
) -> np.ndarray:
    """CIDEr-D per pair, each group being its own corpus (one reference per pair).

    hyp, ref, group: [P] (sentence ids, sentence ids, group id). Returns [P] float64.
    Document frequency of n-gram g in group G = number of G's pairs whose reference contains g;
    log N = log(number of pairs in G).

    Every quantity is computed once where it is defined, not once per pair: the tf-idf
    weights and norms once per distinct (sentence, group) (a prediction matched to k
    segments is k pairs with one hypothesis; a segment matched by several predictions is
    several pairs with one reference), the n-grams a hypothesis shares with a reference once
    per distinct sentence pair; each pair then sums min(w_h, w_r) * w_r over its shared
    n-grams only. The same floating-point operations in the same order as expanding every
    pair (`_cider_core`), so the same bits; on a full val_1 + val_2 evaluation (265k pairs,
    19.7k groups) about 3x less work. The two largest joins run in blocks of about
    `block_entries` n-gram entries (memory only: the same bits for any block size; peak 364
    instead of 995 MiB on that evaluation).
    """
    hyp = np.asarray(hyp, np.int64)
    ref = np.asarray(ref, np.int64)
    group = np.asarray(group, np.int64)
    num_pairs = len(hyp)
    if num_pairs == 0:
        return np.zeros((0,), np.float64)
    k = max(table.num_ngrams, 1)
    num_sentences = len(table.lengths)
    # Distinct (reference, group) and (hypothesis, group); multiplicity = pairs of each.
    rg_keys, pair_rg, rg_count = np.unique(group * num_sentences + ref, return_inverse=True,
                                           return_counts=True)
    hg_keys, pair_hg = np.unique(group * num_sentences + hyp, return_inverse=True)
    rg_ref, rg_group = rg_keys % num_sentences, rg_keys // num_sentences
    hg_hyp, hg_group = hg_keys % num_sentences, hg_keys // num_sentences
    # Document frequencies: a distinct (reference, group) counts once per pair it stands for.
    r_rg, r_entry = pair_entries(table, rg_ref)
    r_keys = rg_group[r_rg] * k + table.ngram_ids[r_entry]
    df_keys, r_df_index = np.unique(r_keys, return_inverse=True)
    del r_keys
    df_counts = np.bincount(r_df_index, weights=rg_count[r_rg].astype(np.float64))
    df_r = df_counts[r_df_index]
    del r_df_index
    group_size = np.bincount(group, minlength=num_groups).astype(np.float64)
    with np.errstate(divide="ignore"):
        log_n = np.log(group_size)
    w_h, norm_h = _hypothesis_weights(table, hg_hyp, hg_group, df_keys, df_counts, log_n,
                                      block_entries)
    w_r = table.counts[r_entry] * (log_n[rg_group][r_rg] - np.log(np.maximum(1.0, df_r)))
    norm_r = np.sqrt(_scatter_add(r_rg * MAX_N + table.orders[r_entry], w_r**2,
                                  (len(rg_keys), MAX_N)))
    del r_rg, r_entry, df_r
    # Shared n-grams of every distinct (hypothesis, reference) sentence pair, in n-gram id
    # order within the pair (as the per-pair join orders them).
    sp_keys, pair_sp = np.unique(hyp * num_sentences + ref, return_inverse=True)
    sp_hyp, sp_ref = sp_keys // num_sentences, sp_keys % num_sentences
    m_sp, m_h_entry, m_r_entry = _shared_entries(table, sp_hyp, sp_ref, block_entries)
    # Each pair's shared n-grams: the matches of its sentence pair (CSR over sentence pairs).
    m_count = np.bincount(m_sp, minlength=len(sp_keys))
    m_start = np.cumsum(m_count) - m_count
    reps = m_count[pair_sp]
    m_pair = np.repeat(np.arange(num_pairs, dtype=np.int64), reps)
    m = np.repeat(m_start[pair_sp] - (np.cumsum(reps) - reps), reps) + np.arange(
        int(reps.sum()), dtype=np.int64)
    # Weights of the shared n-grams of each pair, read from its (sentence, group) entries.
    # First expanded entry of each distinct (sentence, group): the entries are laid out
    # sentence after sentence, as many as the sentence has.
    hg_size = table.offsets[hg_hyp + 1] - table.offsets[hg_hyp]
    rg_size = table.offsets[rg_ref + 1] - table.offsets[rg_ref]
    hg_first, rg_first = np.cumsum(hg_size) - hg_size, np.cumsum(rg_size) - rg_size
    wh = w_h[hg_first[pair_hg[m_pair]] + m_h_entry[m] - table.offsets[hyp[m_pair]]]
    wr = w_r[rg_first[pair_rg[m_pair]] + m_r_entry[m] - table.offsets[ref[m_pair]]]
    dot = _scatter_add(m_pair * MAX_N + table.orders[m_r_entry[m]], np.minimum(wh, wr) * wr,
                       (num_pairs, MAX_N))
    denom = norm_h[pair_hg] * norm_r[pair_rg]
    with np.errstate(invalid="ignore", divide="ignore"):
        val = np.where(denom != 0, dot / np.where(denom != 0, denom, 1.0), dot)
    bigrams_h = np.maximum(table.lengths[hyp] - 1, 0)
    bigrams_r = np.maximum(table.lengths[ref] - 1, 0)
    delta = (bigrams_h - bigrams_r).astype(np.float64)
    val = val * np.e ** (-(delta**2) / (2 * SIGMA**2))[:, None]
    return val.mean(axis=1) * 10.0


class CiderD:
    """Corpus-level CIDEr-D with document frequencies fixed in advance.

    `CiderD.from_references(refs)` counts, for every n-gram, the number of items (reference
    lists) containing it, and log N with N = len(refs) — pycocoevalcap's definition. Sentences
    must already be tokenized (whitespace-separated tokens; see `ptb_tokenize`).

    `.score(hypotheses [I], references [I][k_i]) -> np.ndarray [I]` per-item CIDEr-D.
    """

    def __init__(self, document_frequency: dict[tuple, float], num_documents: int):
        if num_documents <= 0:
            raise ValueError("CiderD needs at least one reference document")
        self.document_frequency = dict(document_frequency)
        self.num_documents = int(num_documents)
        self.log_n = float(np.log(float(num_documents)))

    @classmethod
    def from_references(cls, references: Sequence[Sequence[str]]) -> CiderD:
        flat = [r for refs in references for r in refs]
        table = NgramTable.build(flat)
        owner = np.repeat(np.arange(len(references)), [len(r) for r in references])
        pair, entry = pair_entries(table, np.arange(len(flat)))
        keys = np.unique(owner[pair] * max(table.num_ngrams, 1) + table.ngram_ids[entry])
        ids = keys % max(table.num_ngrams, 1)
        df = np.bincount(ids, minlength=table.num_ngrams)
        return cls({g: float(c) for g, c in zip(table.ngrams, df) if c > 0}, len(references))

    def score(
        self, hypotheses: Sequence[str], references: Sequence[Sequence[str]]
    ) -> np.ndarray:
        if len(hypotheses) != len(references):
            raise ValueError(f"{len(hypotheses)} hypotheses vs {len(references)} reference lists")
        if not hypotheses:
            return np.zeros((0,), np.float64)
        if any(len(r) == 0 for r in references):
            raise ValueError("every hypothesis needs at least one reference")
        flat = [r for refs in references for r in refs]
        table = NgramTable.build(list(hypotheses) + flat)
        num = len(hypotheses)
        hyp = np.arange(num)
        ref = np.arange(num, num + len(flat))
        ref_item = np.repeat(np.arange(num), [len(r) for r in references])
        df_of_ngram = np.asarray(
            [self.document_frequency.get(g, 0.0) for g in table.ngrams], np.float64
        )
        h_pair, h_entry = pair_entries(table, hyp)
        r_pair, r_entry = pair_entries(table, ref)
        log_n = np.full(num, self.log_n)
        return _cider_core(
            table, hyp, ref, ref_item, df_of_ngram[table.ngram_ids[h_entry]],
            df_of_ngram[table.ngram_ids[r_entry]], log_n, h_pair, h_entry, r_pair, r_entry,
        )
