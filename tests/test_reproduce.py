"""`make reproduce` (configs/pipeline/reproduce.py) at size=tiny, and its statistics.

The pipeline test runs the tiny reproduce config through the real pipeline runner, the real
data / text / splits / reproduce_ensemble stages, the real report (statistics, tables, plots)
and the official evaluator on every prediction; only the JAX training and inference stages
are replaced by cheap stand-ins (the suite's budget: the real tiny run compiles ~10 models,
minutes on 2 cores; those stages have their own tests). The stand-in predictor writes the
submission and the official evaluator's metrics file exactly where captioner_predict does, so
the test checks that every table cell is produced and equals the evaluator's output of its
run (and recomputes one of them with the evaluator).
"""
import hashlib
import json
import math
import os

import numpy as np
import pytest

from data_prep.infra import paths
from data_prep.infra.atomic_files import atomic_write_json, read_json
from data_prep.orchestration import registry
from data_prep.orchestration.config_files import load_config_file
from data_prep.orchestration.pipeline import run_pipeline
from data_prep.orchestration.reproduce_splits import split_ids
from data_prep.orchestration.statistics import format_cell, summarize

# ---------------------------------------------------------------- statistics


def test_summarize_matches_scipy_and_hand_values():
    from scipy import stats

    xs = [11.49, 11.56, 11.70]
    s = summarize(xs)
    mean = sum(xs) / 3
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / 2)  # n - 1
    assert s["n"] == 3 and s["mean"] == pytest.approx(mean)
    assert s["std"] == pytest.approx(std) == pytest.approx(np.std(xs, ddof=1))
    low, high = stats.t.interval(0.95, 2, loc=mean, scale=stats.sem(xs))
    assert s["ci95"] == pytest.approx([low, high])
    # by hand: t_{0.975, 2} = 4.302653
    assert s["ci95"][1] - mean == pytest.approx(4.302653 * std / math.sqrt(3), rel=1e-6)
    assert format_cell(summarize([1.0, 2.0, 4.0])) == "2.33 ± 1.53 [-1.46, 6.13]"


def test_summarize_one_value_and_bad_input():
    assert summarize([3.0]) == {"n": 1, "mean": 3.0, "std": None, "ci95": None,
                                "values": [3.0]}
    assert format_cell(summarize([3.0])) == "3.00"
    with pytest.raises(ValueError, match="no values"):
        summarize([])
    with pytest.raises(ValueError, match="NaN"):
        summarize([1.0, float("nan")])


def test_split_ids_is_a_deterministic_partition():
    ids = [f"v_{i:03d}" for i in range(60)]
    parts = split_ids(ids, (0.4, 0.2), seed=0)
    assert [len(parts[p]) for p in ("enlarge", "select", "scored")] == [24, 12, 24]
    assert sorted(sum(parts.values(), [])) == ids
    assert parts == split_ids(list(reversed(ids)), (0.4, 0.2), seed=0)  # order-free
    assert parts != split_ids(ids, (0.4, 0.2), seed=1)
    with pytest.raises(ValueError, match="none to score"):
        split_ids(ids[:2], (0.4, 0.2), seed=0)
    with pytest.raises(ValueError, match="fractions"):
        split_ids(ids, (0.8, 0.3), seed=0)


# ---------------------------------------------------------------- stand-in JAX stages

def fake_encoder(config, workdir):
    """sa_tsp_train stand-in: the result keys and metrics.jsonl of the real stage."""
    paths.make_dirs(workdir)
    h = int(hashlib.md5(f"{config.loss.alpha}{config.loss.beta}{config.seed}".encode())
            .hexdigest(), 16) % 100 / 1000
    lines = [{"step": 1, "split": "train", "loss_action": 2.0, "action_accuracy": 0.1},
             {"step": 2, "split": "train", "loss_action": 1.5, "action_accuracy": 0.2 + h},
             {"step": 2, "split": "val", "action_accuracy": 0.3 + h, "concept_map": 0.2 + h,
              "region_accuracy": 0.9}]
    with paths.open_file(paths.join(workdir, "metrics.jsonl"), "w") as f:
        f.write("".join(json.dumps(x) + "\n" for x in lines))
    return {"step": 2, "val_action_accuracy": 0.3 + h, "val_concept_map": 0.2 + h,
            "val_region_accuracy": 0.9}


def fake_nothing(config, workdir):
    """write_shards / sa_tsp_extract / captioner_train / captioner_scst stand-in."""
    paths.make_dirs(workdir)
    atomic_write_json(paths.join(workdir, "fake_stage.json"), {"stage": config.stage})
    return {"steps": 1}


def fake_predict(config, workdir):
    """captioner_predict stand-in: captions every segment of the split (GT mode) or slightly
    moved segments (queries mode) with a caption of another video chosen from the run's
    identity, then scores with the official evaluator like the real stage."""
    from captioner_jax.evaluation import evaluate_submission

    split = config.predict.captions or config.data.val_captions
    videos = read_json(split)
    pool = sorted({s for v in videos.values() for s in v["sentences"]})
    run = config.init_from or workdir
    results = {}
    for vid, entry in videos.items():
        results[vid] = []
        for i, (s, e) in enumerate(entry["timestamps"]):
            key = int(hashlib.md5(f"{run}/{vid}/{i}".encode()).hexdigest(), 16)
            if config.mode == "queries":
                s, e = s + 0.1 * (e - s), e
            results[vid].append({"sentence": pool[key % len(pool)], "timestamp": [s, e],
                                 "sentence_score": -float(key % 7 + 1)})
    sub = {"version": "VERSION 1.0", "results": results, "external_data": {"used": True}}
    stem = paths.as_path(split).stem
    atomic_write_json(paths.join(workdir, "predictions", f"{stem}.json"), sub)
    metrics = {"videos": len(results)}
    refs = [r for r in config.eval.references if r]
    if refs:
        metrics.update(evaluate_submission(sub, refs, version=str(config.eval.version)))
        atomic_write_json(paths.join(workdir, "predictions", f"{stem}_metrics.json"), metrics,
                          default=float)
    return metrics


STAND_INS = {"sa_tsp_train": "fake_encoder", "write_shards": "fake_nothing",
             "sa_tsp_extract": "fake_nothing", "captioner_train": "fake_nothing",
             "captioner_scst": "fake_nothing", "captioner_predict": "fake_predict"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, nltk_data_dir):
    mp = pytest.MonkeyPatch()
    for stage, fn in STAND_INS.items():
        mp.setitem(registry.STAGES, stage, f"{__name__}:{fn}")
    try:
        config = load_config_file("configs/pipeline/reproduce.py:size=tiny")
        root = str(tmp_path_factory.mktemp("reproduce"))
        summary = run_pipeline(config, root)
    finally:
        mp.undo()
    return root, config, summary


def test_every_cell_is_produced_and_from_the_official_evaluator(tiny_run):
    root, config, summary = tiny_run
    assert summary["steps"] == [dict(s)["name"] for s in config.steps]
    results = read_json(os.path.join(root, "results.json"))
    tables = results["tables"]
    t1 = [t for t in tables if t.startswith("Table 1")]
    t2 = [t for t in tables if t.startswith("Table 2")]
    assert len(t1) == 1 and len(t2) == 2 and "Encoders (held-out clips)" in tables
    assert len(tables[t1[0]]) == 3 and all(len(tables[t]) == 4 for t in t2)
    assert len(tables["Encoders (held-out clips)"]) == 3
    checked = 0
    for title in t1 + t2:
        for row in tables[title].values():
            assert set(row["seeds"]) == {"0"}  # size=tiny: one seed
            for metric in ("METEOR", "Bleu_4", "CIDEr"):
                assert row["stats"][metric]["mean"] == row["seeds"]["0"][metric]
            source = row["sources"]["0"]
            evaluated = read_json(source["file"])
            if source["step"].startswith("ens_"):
                evaluated = evaluated["scored"]["0"]
            for metric, value in row["seeds"]["0"].items():
                assert evaluated[metric] == pytest.approx(value), (title, metric)
            assert row["caption_stats"]["0"]["captions"] > 0
            checked += 1
    assert checked == 11
    # One cell recomputed from its submission by the official evaluator.
    from captioner_jax.evaluation import evaluate_submission

    row = tables[t1[0]]["SA-TSP (action + region + concepts)"]
    sub = row["sources"]["0"]["file"].replace("_metrics.json", ".json")
    fresh = evaluate_submission(sub, [os.path.join(root, "splits", f"scored_{i}.json")
                                      for i in (1, 2)])
    assert fresh["METEOR"] == pytest.approx(row["seeds"]["0"]["METEOR"])
    # The scored split is disjoint from everything used to train or choose.
    splits = read_json(os.path.join(root, "splits", "splits.json"))
    assert not set(splits["scored"]) & (set(splits["enlarge"]) | set(splits["select"]))
    assert set(read_json(os.path.join(root, "splits", "scored_1.json"))) == set(
        splits["scored"])
    enlarged = read_json(os.path.join(root, "splits", "train_enlarged.json"))
    assert not set(enlarged) & set(splits["scored"]) and set(splits["enlarge"]) <= set(enlarged)


def test_report_markdown_and_plots(tiny_run):
    root, _, _ = tiny_run
    results = read_json(os.path.join(root, "results.json"))
    md = paths.read_text(os.path.join(root, "results.md"))
    for title in results["tables"]:
        assert f"**{title}**" in md
    for kind in ("gt", "learned"):
        sel = results["selection"][kind]
        assert 1 <= sel["selected_m"] <= 2 and set(sel["select_mean_meteor"]) == {"1", "2"}
    assert "chosen on the select split" in md
    assert set(results["plots"]) == {"table1", "table2", "pretraining"}
    for file in results["plots"].values():
        with open(os.path.join(root, file), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    # The README generator renders the same tables with the command and the wall time.
    from captioner_jax.visualization.reproduce_tables import main

    readme = os.path.join(root, "README.md")
    with open(readme, "w") as f:
        f.write("x\n<!-- generated:reproduce:begin -->\nold\n<!-- generated:reproduce:end -->\n")
    main(["--results", os.path.join(root, "results.json"), "--readme", readme,
          "--wall-minutes", "1.5"])
    text = paths.read_text(readme)
    assert "old" not in text and "measured wall time 1.5 min" in text
    assert "Table 1: pretraining objective" in text
    # The plots are copied beside the README and linked from there.
    for name, file in results["plots"].items():
        assert f"![{name}](docs/reproduce/{file})" in text
        with open(os.path.join(root, "docs", "reproduce", file), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"

