"""Submission / reference validation, --lenient, unknown ids, empty submissions (no Java)."""
import json
import logging

import pytest

from captioner_jax.evaluation import SubmissionError, evaluate_submission
from captioner_jax.evaluation.report import format_table
from captioner_jax.evaluation.submission import load_references, load_submission

REFS = {
    "v_a": {"duration": 20.0, "timestamps": [[0, 10], [5, 20]],
            "sentences": ["A man plays.", "He stops."]},
    "v_b": {"duration": 9.0, "timestamps": [[1, 8]], "sentences": ["A dog runs."]},
}


def _sub(results, **extra):
    return {"version": "VERSION 1.0", "external_data": {}, "results": results, **extra}


@pytest.mark.parametrize(
    "results, message",
    [
        ({"v_a": {"sentence": "x", "timestamp": [0, 1]}}, "video 'v_a': value is a dict"),
        ({"v_a": [{"sentence": "x", "timestamp": [0]}]}, "video 'v_a', entry 0: 'timestamp'"),
        ({"v_a": [{"sentence": "x", "timestamp": [0, float("nan")]}]}, "entry 0: 'timestamp'"),
        ({"v_a": [{"sentence": "x", "timestamp": ["0", 1]}]}, "entry 0: 'timestamp'"),
        ({"v_a": [{"sentence": "x", "timestamp": [True, 1]}]}, "entry 0: 'timestamp'"),
        ({"v_a": [{"sentence": "ok", "timestamp": [0, 1]},
                  {"sentence": 3, "timestamp": [0, 1]}]}, "entry 1: 'sentence' is a int"),
        ({"v_a": [{"timestamp": [0, 1]}]}, "entry 0: has no 'sentence'"),
        ({"v_a": ["just a string"]}, "entry 0: is a str"),
    ],
)
def test_bad_entries_name_video_and_entry(results, message):
    with pytest.raises(SubmissionError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_submission(_sub(results))


def test_missing_results_and_bad_files(tmp_path):
    with pytest.raises(SubmissionError, match="no 'results'"):
        load_submission({"version": 1})
    with pytest.raises(SubmissionError, match="not found"):
        load_submission(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SubmissionError, match="bad.json is not valid JSON"):
        load_submission(str(bad))
    with pytest.raises(SubmissionError, match="v_x.*2 timestamps vs 1 sentences"):
        load_references({"v_x": {"timestamps": [[0, 1], [1, 2]], "sentences": ["a"]}})


def test_lenient_drops_and_counts(caplog):
    results = {
        "v_a": [{"sentence": "a man", "timestamp": [0, 10]},
                {"sentence": None, "timestamp": [0, 10]},
                {"sentence": "he", "timestamp": [0, "x"]},
                {"sentence": "he stops", "timestamp": [5, 20]}],
        "v_b": "not a list",
    }
    with caplog.at_level(logging.WARNING):
        sub = load_submission(_sub(results), lenient=True)
    assert sub.dropped_entries == 3
    assert "dropped 3 bad entries" in caplog.text
    assert sub.videos["v_a"].sentences == ["a man", "he stops"]
    assert sub.videos["v_a"].positions.tolist() == [0, 3]
    assert "v_b" not in sub.videos
    # The first-N cut applies to the original positions: with N = 2 only "a man" stays.
    assert sub.videos["v_a"].capped(2).sentences == ["a man"]


def test_empty_submission_scores_zero_and_unknown_ids_are_reported(caplog, tmp_path):
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps(REFS))
    with caplog.at_level(logging.WARNING):
        out = evaluate_submission(
            _sub({"v_unknown": [{"sentence": "x", "timestamp": [0, 1]}], "v_b": []}),
            [str(ref)])
    assert "1 video ids are in no reference file" in caplog.text
    for key in ("Bleu_1", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "Recall", "Precision"):
        assert out[key] == 0.0
        assert all(row[key] == 0.0 for row in out["per_tiou"].values())
    assert out["num_videos"] == 2 and out["num_unknown_videos"] == 1
    assert "average" in format_table(out)
    out = evaluate_submission(_sub({}), REFS, soda=False)
    assert out["METEOR"] == 0.0 and out["num_pairs"] == 0
