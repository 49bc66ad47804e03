"""Ensemble selection on hand-made captions, concept vocabulary and IDF table."""
import math

import pytest

from captioner_jax.ensemble.combine import (
    ensemble_predictions,
    proposals_from_captions,
    proposals_from_submission,
)
from captioner_jax.ensemble.selection import (
    Candidate,
    TableCaptionStatistics,
    make_rule,
    select,
)

# Concepts: "red"/"ball" and two inflections of one verb lemma sharing an id.
CONCEPTS = {"red": 0, "ball": 1, "rolls": 2, "rolling": 2, "man": 3, "blue": 4, "cube": 5}
IDF = {"a": 0.1, "the": 0.05, "red": 1.2, "ball": 1.5, "rolls": 2.0, "rolling": 2.0,
       "man": 0.9, "blue": 1.3, "cube": 2.5, "is": 0.2, "big": 3.0}
STATS = TableCaptionStatistics(CONCEPTS, IDF)


def test_statistics_by_hand():
    # red, ball, roll(s|ing): "rolls" and "rolling" are one concept -> 3, not 4.
    assert STATS.count_unique_concepts("A red ball rolls, rolling.") == 3
    assert STATS.count_unique_concepts("the the a") == 0
    assert STATS.max_idf("A big red ball.") == 3.0
    assert STATS.max_idf("zzz qqq") == 0.0  # unknown words: unknown_idf = 0
    assert STATS.max_idf("") == 0.0


def test_concepts_then_idf_prefers_more_concepts_then_idf():
    rule = make_rule("concepts_then_idf")
    cands = [
        Candidate(0, "a man is rolling a ball"),  # man, rolling, ball: 3 concepts, idf 2.0
        Candidate(1, "a red ball rolls"),  # red, ball, rolls: 3 concepts, idf 2.0
        Candidate(2, "a blue cube"),  # 2 concepts, idf 2.5
        Candidate(3, "a big red ball rolls"),  # 3 concepts, idf 3.0 (big is no concept)
    ]
    winner, scores = select(cands, rule, STATS)
    assert winner.model == 3
    assert scores == [(3.0, 2.0), (3.0, 2.0), (2.0, 2.5), (3.0, 3.0)]
    # Exact tie between models 0 and 1: the lower model index wins, whatever the order.
    winner, _ = select([cands[1], cands[0]], rule, STATS)
    assert winner.model == 0


def test_mean_logprob_and_weighted_sum_rules():
    cands = [
        Candidate(0, "a red ball rolls", mean_logprob=-2.0),
        Candidate(1, "a blue cube", mean_logprob=-0.5),
        Candidate(2, "a man", mean_logprob=None),
    ]
    assert select(cands, make_rule("mean_logprob"), STATS)[0].model == 1
    # 1*3 + 0.1*2.0 - 2*2.0 = -0.8 vs 1*2 + 0.1*2.5 - 2*0.5 = 1.25 vs 1 + 0.09 + 0 = 1.09
    rule = make_rule("weighted_sum", w_concepts=1.0, w_idf=0.1, w_logprob=2.0)
    winner, scores = select(cands, rule, STATS)
    assert winner.model == 1
    assert [s[0] for s in scores] == pytest.approx([-0.8, 1.25, 1.09])
    with pytest.raises(KeyError, match="unknown ensemble rule"):
        make_rule("nope")


def _submission(entries):
    return {"version": "x", "results": entries, "external_data": {"used": False}}


def test_ensemble_aligns_proposals_and_reports_winners():
    gt = {
        "v_a": {"duration": 10.0, "timestamps": [[0, 5], [0, 5], [4, 9.5]],
                "sentences": ["s1", "s2", "s3"]},
        "v_b": {"duration": 8.0, "timestamps": [[1, 2]], "sentences": ["s4"]},
    }
    proposals = proposals_from_captions(gt)
    model0 = _submission({
        "v_a": [{"sentence": "a man", "timestamp": [0, 5]},
                {"sentence": "a red ball rolls", "timestamp": [0.0, 5.0]},
                {"sentence": "a blue cube", "timestamp": [4.0, 9.5]}],
        "v_b": [{"sentence": "a ball", "timestamp": [1, 2]}],
    })
    model1 = _submission({
        # Listed in another order and with float noise below 1 ms: still aligned.
        "v_a": [{"sentence": "a blue cube rolls", "timestamp": [4.0000001, 9.5]},
                {"sentence": "a red ball", "timestamp": [0, 5]},
                {"sentence": "the man", "timestamp": [0, 5]}],
        # v_b missing entirely for model 1.
    })
    result = ensemble_predictions(
        proposals, [model0, model1], ["m0", "m1"], make_rule("concepts_then_idf"), STATS
    )
    sents = [p["sentence"] for p in result.submission["results"]["v_a"]]
    # 1st [0,5]: "a man" (1) vs "a red ball" (2) -> m1; 2nd [0,5]: "a red ball rolls" (3)
    # vs "the man" (1) -> m0; [4,9.5]: "a blue cube" (2) vs "a blue cube rolls" (3) -> m1.
    assert sents == ["a red ball", "a red ball rolls", "a blue cube rolls"]
    assert [c["winner_name"] for c in result.choices["v_a"]] == ["m1", "m0", "m1"]
    assert result.submission["results"]["v_b"] == [{"sentence": "a ball", "timestamp": [1.0, 2.0]}]
    assert result.wins == {"m0": 2, "m1": 2}
    assert result.missing == 1 and result.dropped == 0
    assert set(result.submission) == {"version", "results", "external_data"}
    # Proposals from a chosen model's predictions: model 1's segments, in its order.
    props1 = proposals_from_submission(model1)
    assert props1["v_a"][0] == (4.0000001, 9.5)
    res1 = ensemble_predictions(
        props1, [model0, model1], ["m0", "m1"], make_rule("concepts_then_idf"), STATS
    )
    assert [p["sentence"] for p in res1.submission["results"]["v_a"]] == [
        "a blue cube rolls", "a red ball", "a red ball rolls"]


def test_logprob_field_and_bad_entries_are_skipped():
    proposals = {"v": [(0.0, 1.0)]}
    m0 = _submission({"v": [{"sentence": "a red ball", "timestamp": [0, 1], "lp": -3.0},
                            {"sentence": "broken"}]})  # no timestamp: skipped, reported
    m1 = _submission({"v": [{"sentence": "a man", "timestamp": [0, 1], "lp": -0.1}]})
    res = ensemble_predictions(
        proposals, [m0, m1], ["m0", "m1"], make_rule("mean_logprob"), STATS, logprob_field="lp"
    )
    assert res.submission["results"]["v"][0]["sentence"] == "a man"
    assert res.choices["v"][0]["candidates"][0]["score"] == [-3.0]
    # Without the field every candidate scores -inf (written as None) and model 0 wins the tie.
    res = ensemble_predictions(proposals, [m0, m1], ["m0", "m1"], make_rule("mean_logprob"), STATS)
    assert res.submission["results"]["v"][0]["sentence"] == "a red ball"
    assert res.choices["v"][0]["candidates"][1]["score"] == [None]
    assert not math.isnan(res.wins["m0"])


def test_cached_statistics_batch_the_concept_lookup():
    from captioner_jax.ensemble.selection import CachedCaptionStatistics

    calls = []

    def concept_ids(sentences):
        calls.append(list(sentences))
        return [[CONCEPTS[w] for w in s.lower().split() if w in CONCEPTS] for s in sentences]

    stats = CachedCaptionStatistics(concept_ids, STATS.max_idf)
    proposals = {"v": [(0.0, 1.0), (1.0, 2.0)]}
    m0 = _submission({"v": [{"sentence": "a red ball", "timestamp": [0, 1]},
                            {"sentence": "a man", "timestamp": [1, 2]}]})
    m1 = _submission({"v": [{"sentence": "a red ball rolls rolling", "timestamp": [0, 1]},
                            {"sentence": "a man", "timestamp": [1, 2]}]})
    res = ensemble_predictions(
        proposals, [m0, m1], ["m0", "m1"], make_rule("concepts_then_idf"), stats
    )
    assert len(calls) == 1 and sorted(calls[0]) == sorted(
        {"a red ball", "a man", "a red ball rolls rolling"})
    assert [c["winner"] for c in res.choices["v"]] == [1, 0]
    assert stats.count_unique_concepts("a red ball rolls rolling") == 3
    assert stats.max_idf("A Blue cube") == 2.5


def test_logprob_per_word_normalisation():
    proposals = {"v": [(0.0, 1.0)]}
    # sums: -3 over 3 words (mean -1) vs -2.5 over 2 words (mean -1.25): per word, m0 wins.
    m0 = _submission({"v": [{"sentence": "a red ball.", "timestamp": [0, 1], "s": -3.0}]})
    m1 = _submission({"v": [{"sentence": "a man.", "timestamp": [0, 1], "s": -2.5}]})
    rule = make_rule("mean_logprob")
    res = ensemble_predictions(proposals, [m0, m1], ["m0", "m1"], rule, STATS,
                               logprob_field="s", logprob_per_word=True)
    assert res.wins == {"m0": 1, "m1": 0}
    res = ensemble_predictions(proposals, [m0, m1], ["m0", "m1"], rule, STATS, logprob_field="s")
    assert res.wins == {"m0": 0, "m1": 1}
