"""The most-frequent-caption baseline stage."""
import json

from captioner_jax.baseline import baseline_submission, most_frequent_caption, run
from configs.caption_baseline import get_config


def test_most_frequent_caption_and_submission_by_hand():
    train = {"a": {"sentences": [" A red circle.", "Two squares."]},
             "b": {"sentences": ["A red circle. ", "A blue star."]}}
    assert most_frequent_caption(train) == "A red circle."
    split = {"v": {"timestamps": [[0.0, 1.0], [2.0, 5.0]], "sentences": ["x", "y"]}}
    sub = baseline_submission("hello", split)
    assert sub["results"]["v"] == [{"sentence": "hello", "timestamp": [0.0, 1.0]},
                                   {"sentence": "hello", "timestamp": [2.0, 5.0]}]
    assert set(sub) == {"version", "results", "external_data"}


def test_stage_scores_the_baseline_with_the_official_evaluator(synthetic_dataset, tmp_path):
    metrics = run(get_config(f"root={synthetic_dataset}"), str(tmp_path))
    assert metrics["Recall"] == 100.0 and metrics["Precision"] == 100.0  # GT segments
    assert 0.0 < metrics["METEOR"] < 100.0
    saved = json.loads((tmp_path / "baseline_metrics.json").read_text())
    assert saved["caption"] == metrics["caption"]
