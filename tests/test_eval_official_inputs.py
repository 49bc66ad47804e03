"""Inputs the official script scores although they are odd (issue 17 point 2, issue 13 point 10):
`official_inputs` scores them exactly as it does, strict mode rejects them naming that mode,
crash cases stay errors; scored-but-suspicious inputs are counted and reported; `--json` to an
unwritable place fails before computing.

Golden numbers: PDVC `densevid_eval3/evaluate2018.py` (= densevid_eval deba7d7) run with `-v`
from a scratch copy outside the project (pip pycocoevalcap 1.2, Java 17, Python 3.11) on the
inputs below written with `json.dump` (NaN / Infinity literals), PYTHONHASHSEED 0 and 1 gave
identical numbers. The strict project refused these inputs (exit 2) and `--lenient` dropped
the entries (Precision 50.0 instead of 31.25 for ODD_NAN).
"""
import json
import logging

import pytest

from captioner_jax.evaluation import SubmissionError, evaluate_submission
from captioner_jax.evaluation.report import format_table
from captioner_jax.evaluation.submission import load_submission
from captioner_jax.evaluation.tiou import densevid_tiou_matrix, tiou_matrix

NAN, INF = float("nan"), float("inf")
REF = {"v_a": {"duration": 20.0, "timestamps": [[0, 10], [5, 20]],
               "sentences": ["A man plays the guitar.", "He stops and waves."]},
       "v_b": {"duration": 9.0, "timestamps": [[1, 8]], "sentences": ["A dog runs on the grass."]}}


def _sub(results):
    return {"version": "VERSION 1.0", "external_data": {}, "results": results}


ODD = _sub({
    "v_a": [{"sentence": "a man plays a guitar", "timestamp": [NAN, 5.0]},
            {"sentence": "he waves", "timestamp": [5, 20, 0.93]},
            {"sentence": "a man plays", "timestamp": [0, INF]},
            {"sentence": "he stops", "timestamp": [-INF, 12.0, "extra", None]},
            {"sentence": "a man", "timestamp": [True, 10]}],
    "v_b": [{"sentence": "a dog runs", "timestamp": [NAN, NAN]},
            {"sentence": "a dog runs on grass", "timestamp": [1.5, 8.0, 0.5]},
            {"sentence": "", "timestamp": [9.0, 2.0]}]})
ODD_GOLDEN = {
    "Bleu_1": 0.4188362784452345, "Bleu_2": 0.33614790613465334, "Bleu_3": 0.2680976245009107,
    "Bleu_4": 0.20010820239820853, "METEOR": 0.18012028238537142, "ROUGE_L": 0.37655156194614847,
    "CIDEr": 1.8717709663747493, "Recall": 0.9375, "Precision": 0.5333333333333332}
ODD_NAN = _sub({"v_a": [{"sentence": "a man plays a guitar", "timestamp": [NAN, 5.0]},
                        {"sentence": "he waves", "timestamp": [5, 20]}]})
ODD_NAN_GOLDEN = {
    "Bleu_1": 0.18765828136261306, "Bleu_2": 0.05500250870229741, "Bleu_3": 0.04558512929198061,
    "Bleu_4": 8.167072257515724e-06, "METEOR": 0.07968717930693299, "ROUGE_L": 0.2072164948453608,
    "CIDEr": 0.6539115871691473, "Recall": 0.3125, "Precision": 0.3125}


@pytest.mark.parametrize("sub, golden", [(ODD, ODD_GOLDEN), (ODD_NAN, ODD_NAN_GOLDEN)])
def test_official_inputs_score_exactly_as_the_official_script(sub, golden):
    out = evaluate_submission(sub, REF, official_inputs=True)
    for key, value in golden.items():
        assert out[key] == pytest.approx(100 * value, abs=1e-9), key
    assert out["input_mode"] == "official_inputs"
    assert out["num_official_only_entries"] == (7 if sub is ODD else 1)


def test_nan_bound_follows_python_min_max():
    # min(end, nan) is end and max(start, nan) is start in Python: the NaN start gives way
    # to the reference's, so [nan, 5] vs [0, 10] is 5 / 10 (numpy min/max would give NaN).
    got = densevid_tiou_matrix([[NAN, 5.0], [0, INF], [INF, INF], [3, 7]], [[0, 10]])[:, 0]
    assert got[0] == pytest.approx(0.5) and got[1] == 0.0 and not got[2] >= 0.3
    assert got[3] == tiou_matrix([[3, 7]], [[0, 10]])[0, 0]


@pytest.mark.parametrize("entry", [
    {"sentence": "x", "timestamp": [NAN, 5.0]},
    {"sentence": "x", "timestamp": [0, INF]},
    {"sentence": "x", "timestamp": [0, 5, 0.9]},
    {"sentence": "x", "timestamp": [True, 5]},
])
def test_strict_default_rejects_and_names_the_mode(entry):
    with pytest.raises(SubmissionError, match=r"video 'v_a', entry 0: .*--official-inputs"):
        load_submission(_sub({"v_a": [entry]}))
    sub = load_submission(_sub({"v_a": [entry]}), official_inputs=True)
    assert sub.official_only == 1 and sub.videos["v_a"].timestamps.shape == (1, 2)


@pytest.mark.parametrize("value, message", [
    ([{"timestamp": [0, 1]}], "has no 'sentence'"),
    ([{"sentence": None, "timestamp": [0, 1]}], "'sentence' is a NoneType"),
    ([{"sentence": "x", "timestamp": ["0", 1]}], "'timestamp'"),
    ([{"sentence": "x", "timestamp": [0]}], "'timestamp'"),
    ([{"sentence": "x", "timestamp": [None, 1]}], "'timestamp'"),
    ([{"sentence": "x", "timestamp": [10**400, 1]}], "'timestamp'"),
    (["a string"], "is a str"),
    ({"sentence": "x", "timestamp": [0, 1]}, "value is a dict"),
])
def test_official_crash_cases_stay_errors(value, message):
    """What the official script raises on (KeyError, TypeError, IndexError, OverflowError)."""
    with pytest.raises(SubmissionError, match=message):
        load_submission(_sub({"v_a": value}), official_inputs=True,
                        reference_ids={"v_a"}, max_proposals=1000)
    with pytest.raises(SubmissionError, match=message):  # strict mode too
        load_submission(_sub({"v_a": value}))


def test_entries_the_official_never_reads_are_not_errors(caplog):
    """Unknown videos and entries after max_proposals are never read by the official."""
    bad = {"sentence": None, "timestamp": "?"}
    good = {"sentence": "a man", "timestamp": [0, 10]}
    sub = _sub({"v_a": [good, bad], "v_unknown": [bad], "v_str": "not read"})
    with caplog.at_level(logging.WARNING):
        out = load_submission(sub, official_inputs=True, reference_ids={"v_a"}, max_proposals=1)
    assert out.dropped_entries == 3 and "never read by the official script" in caplog.text
    assert out.videos["v_a"].sentences == ["a man"]
    with pytest.raises(SubmissionError, match="entry 1"):  # read when the cap allows it
        load_submission(sub, official_inputs=True, reference_ids={"v_a"}, max_proposals=2)
    with pytest.raises(SubmissionError, match="'v_a', entry 1"):
        load_submission(sub)


def test_soda_refuses_official_only_timestamps():
    with pytest.raises(SubmissionError, match="SODA_c needs finite numeric"):
        evaluate_submission(ODD_NAN, REF, official_inputs=True, soda=True)


def test_suspicious_scored_inputs_are_counted_and_reported(caplog):
    """Reversed / out-of-video timestamps, empty sentences, empty results (issue 13 point 10):
    scored as the official script scores them (same numbers), counted and warned about."""
    results = {"v_a": [{"sentence": "a man plays", "timestamp": [10, 0]},
                       {"sentence": " ", "timestamp": [-1, 10]},
                       {"sentence": "\u00e9", "timestamp": [5, 25]},
                       {"sentence": "he waves", "timestamp": [5, 20]}],
               "v_b": []}
    with caplog.at_level(logging.WARNING):
        out = evaluate_submission(_sub(results), REF, tious=(0.5,))
    notes = out["input_notes"]
    assert notes["reversed_timestamps"]["count"] == 1
    assert "entry 0" in notes["reversed_timestamps"]["first"]
    assert notes["timestamps_outside_video"]["count"] == 2
    assert notes["empty_sentences"]["count"] == 2
    assert notes["videos_with_empty_list"]["count"] == 1
    assert "empty_results" not in notes
    assert "1 x reversed timestamps" in caplog.text
    table = format_table(out)
    assert "warning: 2 x timestamps outside video" in table
    # A reversed segment overlaps nothing; [-1, 10] and [5, 25] still match (tIoU 0.91, 0.75,
    # no clipping to the video): v_a precision 3/4, v_b (empty list) 0.
    assert out["Precision"] == pytest.approx(100 * (3 / 4) / 2)
    empty = evaluate_submission(_sub({}), REF, tious=(0.5,))
    assert empty["input_notes"]["empty_results"]["count"] == 1 and empty["METEOR"] == 0.0
    assert "warning: 1 x empty results" in format_table(empty)


def test_table_header_names_version_and_mode():
    out = evaluate_submission(ODD_NAN, REF, tious=(0.5,), official_inputs=True,
                              version="latest")
    head = format_table(out).splitlines()[0]
    assert "version latest (densevid_eval 9d4045a" in head and "official_inputs" in head
    out = evaluate_submission(_sub({}), REF, tious=(0.5,))
    assert "version 2018 (densevid_eval deba7d7 = PDVC evaluate2018.py" in format_table(out)


def test_cli_official_inputs_json_and_unwritable_json(tmp_path, capsys, monkeypatch):
    import captioner_jax.evaluate as cli

    sub, ref = tmp_path / "sub.json", tmp_path / "ref.json"
    sub.write_text(json.dumps(ODD_NAN))  # NaN literal, as json.dump writes it
    ref.write_text(json.dumps(REF))
    base = ["--submission", str(sub), "--references", str(ref)]
    assert cli.main(base) == 2
    assert "--official-inputs" in capsys.readouterr().err
    out_json = tmp_path / "deep" / "out.json"
    assert cli.main(base + ["--official-inputs", "--json", str(out_json)]) == 0
    printed = capsys.readouterr().out
    assert "version 2018" in printed and "31.2500" in printed  # Precision, as the official
    written = json.loads(out_json.read_text())
    assert written["Precision"] == pytest.approx(31.25)
    assert [p.name for p in out_json.parent.iterdir()] == ["out.json"]  # no temporaries

    def must_not_run(*args, **kwargs):
        raise AssertionError("evaluated although --json cannot be written")

    monkeypatch.setattr(cli, "evaluate_submission", must_not_run)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    for bad in (blocker / "out.json", tmp_path):  # parent is a file; target is a folder
        assert cli.main(base + ["--official-inputs", "--json", str(bad)]) == 1
        assert "cannot write" in capsys.readouterr().err
    assert "2018" in cli.build_parser().format_help() and "PDVC" in cli.VERSION_HELP


def test_launch_stage_official_inputs_and_unwritable_workdir(tmp_path, monkeypatch):
    import captioner_jax.evaluation.stage as stage
    from configs.evaluate import get_config

    sub, ref = tmp_path / "sub.json", tmp_path / "ref.json"
    sub.write_text(json.dumps(ODD_NAN))
    ref.write_text(json.dumps(REF))
    config = get_config("official_inputs")
    with config.unlocked():
        config.submission, config.references = str(sub), [str(ref)]
    result = stage.run(config, str(tmp_path / "work"))
    assert result["Precision"] == pytest.approx(100 * ODD_NAN_GOLDEN["Precision"], abs=1e-9)
    written = json.loads((tmp_path / "work" / "eval_results.json").read_text())
    assert written["input_mode"] == "official_inputs"
    monkeypatch.setattr(stage, "evaluate_submission", lambda *a, **k: pytest.fail("computed"))
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(OSError, match="cannot write"):
        stage.run(config, str(blocker / "work"))
