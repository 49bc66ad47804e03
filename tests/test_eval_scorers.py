"""Evaluator building blocks without Java: tIoU, pairing, P/R, BLEU, ROUGE-L, CIDEr-D, SODA DP.

Golden values are computed by hand (see the comments) or by pycocoevalcap's own Python
scorers on the same data.
"""
import collections
import contextlib
import io
import random

import numpy as np
import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge, my_lcs

from captioner_jax.evaluation import CiderD
from captioner_jax.evaluation.bleu import bleu_from_stats, bleu_pair_stats, grouped_bleu
from captioner_jax.evaluation.cider import _cider_core, grouped_cider
from captioner_jax.evaluation.ngrams import (
    NgramTable,
    match_entries,
    match_sorted_entries,
    pair_entries,
)
from captioner_jax.evaluation.rouge import lcs_lengths, rouge_l_scores, rouge_l_text_pairs
from captioner_jax.evaluation.soda import soda_dp
from captioner_jax.evaluation.tiou import caption_pairs, precision_recall, tiou, tiou_matrix

WORDS = "a man woman is playing the guitar dog runs in on field ball and with red".split()


def _random_sentences(rng, n, lo=0, hi=14):
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi))) for _ in range(n)]


# ---------------------------------------------------------------- tIoU, pairing, P/R
def test_tiou_edge_cases():
    assert tiou([0, 10], [0, 10]) == pytest.approx(1 - 1e-9, abs=1e-9)
    assert tiou([0, 10], [0, 10]) >= 0.9
    # exactly 0.5 overlap: 5 / (10 + 1e-8) < 0.5, so it fails ">= 0.5"
    assert tiou([0, 10], [0, 5]) < 0.5
    assert tiou([5, 3], [0, 10]) == 0.0  # reversed segment never overlaps
    assert tiou([4, 4], [0, 10]) == 0.0  # zero length
    assert tiou([0, 10], [20, 30]) == 0.0
    # union uses min(span, sum of lengths): [0,4] vs [2,6] -> 2 / 6
    assert tiou([0, 4], [2, 6]) == pytest.approx(2 / 6, abs=1e-8)
    m = tiou_matrix(np.array([[0, 4.0], [2, 6]]), np.array([[2, 6.0]]))
    assert m.shape == (2, 1) and m[1, 0] == pytest.approx(1.0, abs=1e-8)


def test_pairing_one_to_many_and_garbage():
    ious = np.array([[0.8, 0.6, 0.0],   # matches gt 0 and 1
                     [0.1, 0.2, 0.0],   # unmatched -> garbage
                     [0.0, 0.0, 0.5]])  # matches gt 2 at t <= 0.5
    p, g = caption_pairs(ious, 0.5)
    assert p.tolist() == [0, 0, 1, 2] and g.tolist() == [0, 1, -1, 2]
    p, g = caption_pairs(ious, 0.7)
    assert p.tolist() == [0, 1, 2] and g.tolist() == [0, -1, -1]


def test_precision_recall_strict_and_per_file_max():
    # 2 predictions; file 0 has 2 segments, file 1 has 1.
    ious = np.array([[0.5, 0.9, 0.0], [0.0, 0.0, 0.6]])
    files = np.array([0, 0, 1])
    # t = 0.5: strict ">" so the 0.5 entry does not count.
    p, r = precision_recall(ious, files, 2, 0.5)
    # file 0: pred 0 covers gt 1 -> P = 1/2, R = 1/2; file 1: pred 1 covers -> P = 1/2, R = 1
    assert (p, r) == (0.5, 1.0)
    assert precision_recall(np.zeros((0, 3)), files, 2, 0.5) == (0.0, 0.0)


# ---------------------------------------------------------------- BLEU
def _coco_bleu(hyps, refs):
    gts = {i: list(r) for i, r in enumerate(refs)}
    res = {i: [h] for i, h in enumerate(hyps)}
    with contextlib.redirect_stdout(io.StringIO()):
        return Bleu(4).compute_score(gts, res)[0]


def _bleu(hyps, refs):
    table = NgramTable.build(list(hyps) + [r for rs in refs for r in rs])
    owner = np.repeat(np.arange(len(refs)), [len(r) for r in refs])
    stats = bleu_pair_stats(table, np.arange(len(hyps)),
                            np.arange(len(hyps), len(hyps) + len(owner)), owner)
    return bleu_from_stats(stats.sum(0))


def test_bleu_hand_golden_no_4gram_match():
    # hyp "a b c d" vs ref "a b c e": matches 4/4, 2/3, 1/2 (clipped), 0/1; same length.
    got = _bleu(["a b c d"], [["a b c x"]])
    p = [3 / 4, 2 / 3, 1 / 2, 1e-15 / 1]
    want = [np.prod(p[:n]) ** (1 / n) for n in range(1, 5)]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert 0 < got[3] < 1e-3  # tiny but not zero: no smoothing beyond 1e-15 / 1e-9
    assert _bleu([""], [["a man"]]).tolist() == [0.0] * 4  # brevity penalty underflows


def test_bleu_matches_pycocoevalcap_random():
    rng = random.Random(0)
    for _ in range(5):
        n = rng.randint(1, 30)
        hyps = _random_sentences(rng, n)
        refs = [_random_sentences(rng, rng.randint(1, 3), lo=1) for _ in range(n)]
        np.testing.assert_allclose(_bleu(hyps, refs), _coco_bleu(hyps, refs), rtol=1e-9)


def test_grouped_bleu_sums_per_group():
    hyps, refs = ["a man runs", "the dog", "a dog runs"], ["a man runs", "a dog", "the dog"]
    table = NgramTable.build(hyps + refs)
    stats = bleu_pair_stats(table, np.arange(3), np.arange(3, 6))
    got = grouped_bleu(stats, np.array([0, 1, 1]), 2)
    np.testing.assert_allclose(got[0], _coco_bleu(hyps[:1], [[r] for r in refs[:1]]))
    np.testing.assert_allclose(got[1], _coco_bleu(hyps[1:], [[r] for r in refs[1:]]))



@pytest.mark.parametrize("block_entries", [1, 7, 10**9])
def test_one_reference_bleu_in_blocks_equals_the_general_join_to_the_bit(block_entries):
    """With one reference per pair (ref_pair None, as the dense-captioning evaluation calls
    it) the clipped matches are joined pair block by pair block; the general path (max over
    a pair's references, one join) gives the same bits for any block size."""
    rng = random.Random(3)
    sentences = _random_sentences(rng, 40) + ["", "a", "a a a a a a"]
    table = NgramTable.build(sentences)
    np_rng = np.random.default_rng(3)
    hyp, ref = np_rng.integers(0, 43, size=200), np_rng.integers(0, 43, size=200)
    got = bleu_pair_stats(table, hyp, ref, block_entries=block_entries)
    general = bleu_pair_stats(table, hyp, ref, ref_pair=np.arange(200))
    np.testing.assert_array_equal(got.view(np.int64), general.view(np.int64))
    assert bleu_pair_stats(table, hyp[:0], ref[:0], block_entries=block_entries).shape == (0, 10)


def test_sorted_join_equals_the_general_join():
    rng = np.random.default_rng(0)
    for size_a, size_b in [(0, 5), (5, 0), (1, 1), (300, 200), (1000, 50)]:
        a = np.unique(rng.integers(0, 2000, size_a))
        b = np.unique(rng.integers(0, 2000, size_b))
        for got, want in zip(match_sorted_entries(a, b), match_entries(a, b)):
            np.testing.assert_array_equal(got, want)


def _naive_ngram_counts(sentence, n=4):
    words = sentence.split()
    return collections.Counter(
        tuple(words[i:i + k]) for k in range(1, n + 1) for i in range(len(words) - k + 1))


@pytest.mark.parametrize("vocabulary", ["small", "over_46341_words"])
def test_ngram_table_counts_every_ngram_of_every_sentence(vocabulary):
    """Both ways of finding the distinct n-grams: one int64 code per n-gram (vocabularies
    with (|V| + 1)^4 < 2^62) and unique rows of word ids (larger ones)."""
    rng = random.Random(4)
    if vocabulary == "small":
        sentences = _random_sentences(rng, 60) + ["", "a a a a a a"]
    else:
        sentences = [" ".join(f"w{i}" for i in range(j * 10, j * 10 + 10)) for j in range(4700)]
        sentences += ["w1 w2 w3 w1 w2 w3", "", "w5"]
    table = NgramTable.build(sentences)
    if vocabulary != "small":  # the unique-rows way
        assert (len(table.words) + 1) ** 4 >= 2**62
    grams = table.ngrams
    for s, sentence in enumerate(sentences):
        lo, hi = table.offsets[s], table.offsets[s + 1]
        got = {grams[g]: c for g, c in zip(table.ngram_ids[lo:hi], table.counts[lo:hi])}
        assert got == _naive_ngram_counts(sentence), sentence
        assert list(table.ngram_ids[lo:hi]) == sorted(table.ngram_ids[lo:hi])
        assert table.lengths[s] == len(sentence.split())
    np.testing.assert_array_equal(table.orders, [len(grams[g]) - 1 for g in table.ngram_ids])
    assert len(set(grams)) == len(grams)


# ---------------------------------------------------------------- ROUGE-L
def test_lcs_matches_reference_dp_short_and_long():
    rng = np.random.default_rng(0)
    hyps = [rng.integers(0, 6, rng.integers(1, 90)) for _ in range(60)]
    refs = [rng.integers(0, 6, rng.integers(1, 90)) for _ in range(60)]  # some > 64 tokens
    got = lcs_lengths(hyps, refs)
    want = [my_lcs(list(r), list(h)) for h, r in zip(hyps, refs)]
    assert got.tolist() == want


def test_rouge_matches_pycocoevalcap():
    rng = random.Random(1)
    hyps = _random_sentences(rng, 40) + ["", "a man"]
    refs = [_random_sentences(rng, rng.randint(1, 2)) for _ in range(40)] + [[""], ["a man"]]
    want = [Rouge().calc_score([h], r) for h, r in zip(hyps, refs)]
    np.testing.assert_allclose(rouge_l_scores(hyps, refs), want, rtol=1e-12)
    # hand golden: lcs("a man is here", "a man there") = 2, P = 2/4, R = 2/3
    p, r, b = 0.5, 2 / 3, 1.2
    assert rouge_l_scores(["a man is here"], [["a man there"]])[0] == pytest.approx(
        (1 + b * b) * p * r / (r + b * b * p))


def test_rouge_text_pairs_in_length_sorted_chunks_equal_per_pair_scores():
    """`rouge_l_text_pairs` reorders pairs by length into chunks; results land on their own
    pairs (chunks of 3 over sentences of 0-90 tokens, some past one 64-bit word)."""
    rng = random.Random(4)
    texts = _random_sentences(rng, 25) + [" ".join(["man"] * 90), ""]
    np_rng = np.random.default_rng(4)
    hyp, ref = np_rng.integers(0, 27, size=80), np_rng.integers(0, 27, size=80)
    want = rouge_l_scores([texts[i] for i in hyp], [[texts[i]] for i in ref])
    for chunk in (3, 8192):
        np.testing.assert_array_equal(rouge_l_text_pairs(texts, hyp, ref, chunk=chunk), want)


# ---------------------------------------------------------------- CIDEr-D
def _coco_cider(hyps, refs):
    gts = {i: list(r) for i, r in enumerate(refs)}
    res = {i: [h] for i, h in enumerate(hyps)}
    return Cider().compute_score(gts, res)[1]


def test_cider_quirks_hand_golden():
    table = NgramTable.build(["a man is playing guitar", "a dog runs on the field"])
    # single pair in a group: log(1) = 0 -> every weight 0 -> CIDEr 0
    assert grouped_cider(table, np.array([0]), np.array([0]), np.array([0]), 1)[0] == 0.0
    # two perfect pairs with different references: "a" is in both references (df 2 = N ->
    # weight 0), so the scores are below 10; compared with pycocoevalcap.
    got = grouped_cider(table, np.array([0, 1]), np.array([0, 1]), np.array([0, 0]), 1)
    np.testing.assert_allclose(got, _coco_cider(["a man is playing guitar",
                                                 "a dog runs on the field"],
                                                [["a man is playing guitar"],
                                                 ["a dog runs on the field"]]))
    t2 = NgramTable.build(["x y", "z"])
    # "x y" vs itself and "z" vs itself: all n-grams df 1, N 2: both cosines 1 for the n
    # that exist; "z" has only a unigram -> mean over n = (1 + 0 + 0 + 0) / 4 -> 2.5, "x y"
    # has uni and bigram -> 5.0; plus the bigram length penalty is 0 here.
    got = grouped_cider(t2, np.array([0, 1]), np.array([0, 1]), np.array([0, 0]), 1)
    np.testing.assert_allclose(got, [5.0, 2.5])


def test_grouped_cider_matches_pycocoevalcap_per_group():
    rng = random.Random(2)
    hyps = _random_sentences(rng, 30)
    refs = _random_sentences(rng, 10, lo=1)
    ref_of = [rng.randrange(10) for _ in range(30)]
    groups = np.array([i % 3 for i in range(30)])
    table = NgramTable.build(hyps + refs)
    got = grouped_cider(table, np.arange(30), 30 + np.array(ref_of), groups, 3)
    for g in range(3):
        idx = np.flatnonzero(groups == g)
        want = _coco_cider([hyps[i] for i in idx], [[refs[ref_of[i]]] for i in idx])
        np.testing.assert_allclose(got[idx], want, rtol=1e-9, atol=1e-12)


def _expanded_grouped_cider(table, hyp, ref, group, num_groups):
    """grouped_cider computed pair by pair (every pair's entries expanded, no sharing)."""
    k = max(table.num_ngrams, 1)
    h_pair, h_entry = pair_entries(table, hyp)
    r_pair, r_entry = pair_entries(table, ref)
    r_keys = group[r_pair] * k + table.ngram_ids[r_entry]
    df_keys, df_counts = np.unique(r_keys, return_counts=True)
    h_keys = group[h_pair] * k + table.ngram_ids[h_entry]
    pos = np.minimum(np.searchsorted(df_keys, h_keys), len(df_keys) - 1)
    df_h = np.where(df_keys[pos] == h_keys, df_counts[pos], 0).astype(np.float64)
    df_r = df_counts[np.searchsorted(df_keys, r_keys)].astype(np.float64)
    with np.errstate(divide="ignore"):
        log_n = np.log(np.bincount(group, minlength=num_groups).astype(np.float64))[group]
    return _cider_core(table, hyp, ref, np.arange(len(ref)), df_h, df_r, log_n, h_pair,
                       h_entry, r_pair, r_entry)


@pytest.mark.parametrize("block_entries", [1, 9, 10**9])
def test_grouped_cider_shares_work_between_repeated_sentences_to_the_bit(block_entries):
    """Groups where a hypothesis has several pairs (a prediction matched to k segments), a
    reference has several pairs, a (hypothesis, reference) pair repeats, sentences are empty
    or one word: pycocoevalcap's numbers per group, and the bits of the pair-by-pair
    expansion, whatever the size of the blocks its largest joins run in."""
    rng = random.Random(5)
    sentences = _random_sentences(rng, 12) + ["", "dog", "a dog runs"]
    table = NgramTable.build(sentences)
    np_rng = np.random.default_rng(5)
    hyp = np_rng.integers(0, 15, size=120)
    ref = np_rng.integers(0, 15, size=120)
    hyp[:6], ref[:6] = 3, [1, 2, 4, 4, 4, 14]  # one hypothesis x several references
    group = np.sort(np_rng.integers(0, 7, size=120))
    got = grouped_cider(table, hyp, ref, group, 8, block_entries=block_entries)
    np.testing.assert_array_equal(got.view(np.int64),
                                  _expanded_grouped_cider(table, hyp, ref, group, 8).view(np.int64))
    for g in range(7):
        idx = np.flatnonzero(group == g)
        want = _coco_cider([sentences[hyp[i]] for i in idx], [[sentences[ref[i]]] for i in idx])
        np.testing.assert_allclose(got[idx], want, rtol=1e-9, atol=1e-12)
    assert grouped_cider(table, hyp[:0], ref[:0], group[:0], 1).shape == (0,)
    empty = NgramTable.build(["", "a b"])  # no reference has an n-gram
    assert grouped_cider(empty, np.array([1, 1]), np.array([0, 0]), np.array([0, 0]), 1
                         ).tolist() == [0.0, 0.0]


def test_corpus_cider_d_equals_pycocoevalcap():
    rng = random.Random(3)
    refs = [_random_sentences(rng, rng.randint(1, 4), lo=1) for _ in range(25)]
    hyps = _random_sentences(rng, 25)
    scorer = CiderD.from_references(refs)
    np.testing.assert_allclose(scorer.score(hyps, refs), _coco_cider(hyps, refs),
                               rtol=1e-9, atol=1e-12)
    assert scorer.score([], []).shape == (0,)
    with pytest.raises(ValueError):
        scorer.score(["a"], [[]])


# ---------------------------------------------------------------- SODA DP
def _soda_dp_recursive(x):
    """The fujiso/SODA recursion, written out independently for small matrices."""
    memo = {}

    def dp(i, j):
        if (i, j) in memo:
            return memo[i, j]
        if i == 0 and j == 0:
            v = x[0, 0]
        elif i == 0:
            v = max(dp(0, j - 1), x[0, j])
        elif j == 0:
            v = max(dp(i - 1, 0), x[i, 0])
        else:
            v = max(dp(i - 1, j), dp(i, j - 1), dp(i - 1, j - 1) + x[i, j])
        memo[i, j] = v
        return v

    return dp(x.shape[0] - 1, x.shape[1] - 1)


def test_soda_dp_hand_and_random():
    # Order-preserving: the crossing pair (0,1)+(1,0) = 0.9 + 0.9 is not allowed; best is
    # (0,0) + (1,1) = 0.5 + 0.5 or a single 0.9 -> 1.0.
    x = np.array([[0.5, 0.9], [0.9, 0.5]])
    assert soda_dp(x) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.random((rng.integers(1, 7), rng.integers(1, 9))) * (rng.random((1, 1)) > 0.2)
        assert soda_dp(x) == pytest.approx(_soda_dp_recursive(x), abs=1e-12)
    assert soda_dp(np.zeros((3, 0))) == 0.0


def test_soda_dp_many_proposals_no_recursion_limit():
    x = np.eye(4, 1500)  # 1500 proposals; the recursive original would overflow the stack
    assert soda_dp(x) == pytest.approx(4.0)
