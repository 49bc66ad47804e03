"""configs/pipeline/activitynet.py: the whole ActivityNet chain as one pipeline.

The slow test runs `:runlocal` end to end, in process through the pipeline stage, on the real
annotation files of ../shared/data restricted to 4 train + 2 val ids (with generated videos):
text -> shards -> tsp_init (stands in for imported TSP weights) -> gvf -> SA-TSP pretraining
from those weights -> extraction -> captioners in both proposal modes -> SCST -> ensemble ->
evaluation. It fails (not skips) without the shared data under DVC_REQUIRE_DATA=1. The fast
tests check the switches on the step list only.
"""
import csv
import glob
import json
import os

import h5py
import numpy as np
import pytest

from data_prep.orchestration.config_files import load_config_file
from data_prep.orchestration.pipeline import run_pipeline

CONFIG = "configs/pipeline/activitynet.py"
METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "Recall",
           "Precision")


def _steps(arg: str = "") -> dict[str, dict]:
    config = load_config_file(f"{CONFIG}:{arg}" if arg else CONFIG)
    return {step["name"]: dict(step) for step in map(dict, config.steps)}


# ----------------------------------------------------------------------------- switches
def test_full_chain_steps_and_switches(tmp_path):
    steps = _steps(f"data={tmp_path}/d,videos={tmp_path}/v,init={tmp_path}/w,members=3")
    assert list(steps) == [
        "text", "shards", "gvf", "sa_tsp", "features", "captioner", "predict",
        "captioner_gt_seed0", "predict_gt_seed0", "captioner_gt_seed1", "predict_gt_seed1",
        "captioner_gt_seed2", "predict_gt_seed2", "scst", "ensemble", "evaluate"]
    assert f"data_dir={tmp_path}/d/activitynet_captions" in steps["text"]["config"]
    assert f"videos={tmp_path}/v" in steps["shards"]["config"]
    # SA-TSP starts from the imported weights and reads the GVF the gvf step extracts with them.
    assert f"params={tmp_path}/w" in steps["gvf"]["config"]
    assert f"init={tmp_path}/w," in steps["sa_tsp"]["config"]
    assert "gvf={workdir}/features_tsp/gvf_max.h5" in steps["sa_tsp"]["config"]
    assert "mode=gt" not in steps["captioner"]["config"]
    assert "init={workdir}/captioner_gt_seed0" in steps["scst"]["config"]
    assert "members=gt_seed0+gt_seed1+gt_seed2" in steps["ensemble"]["config"]
    refs = steps["evaluate"]["overrides"]["references"]
    assert refs == [f"{tmp_path}/d/activitynet_captions/val_{i}.json" for i in (1, 2)]
    # A given GVF file replaces the gvf step.
    steps = _steps(f"gvf={tmp_path}/g.h5")
    assert "gvf" not in steps and f"gvf={tmp_path}/g.h5," in steps["sa_tsp"]["config"]


def test_pre_extracted_features_skip_the_encoder_steps(tmp_path):
    steps = _steps(f"features={tmp_path}/feats,dim=1024,members=1")
    assert list(steps) == ["text", "captioner", "predict", "captioner_gt_seed0",
                           "predict_gt_seed0", "scst", "ensemble", "evaluate"]
    for name in ("captioner", "predict_gt_seed0", "scst"):
        assert f"features={tmp_path}/feats,dim=1024" in steps[name]["config"]
    steps = _steps(f"features={tmp_path}/tsp.h5")  # TSP's HDF5 layout
    assert f"h5={tmp_path}/tsp.h5,dim=512" in steps["captioner"]["config"]


def test_every_step_config_loads():
    """Each step's own config file accepts its arg (a misspelled switch fails here, not hours
    into a run)."""
    for arg in ("", "runlocal", "features=f.h5,members=1"):
        for step in _steps(arg).values():
            load_config_file(step["config"].replace("{workdir}", "/w"))


@pytest.mark.parametrize("arg, message", [
    ("runlocal,videos=v", "runlocal generates"),
    ("runlocal,features=f", "runlocal generates"),
    ("members=0", "at least 1"),
    ("member=2", "unknown config switch"),
])
def test_bad_switches_are_errors(arg, message):
    with pytest.raises(ValueError, match=message):
        load_config_file(f"{CONFIG}:{arg}")


# ----------------------------------------------------------------------------- subset stage
def test_subset_of_given_ids_and_bad_ids(shared_data, tmp_path):
    from data_prep.synthetic.activitynet_subset import run as make_subset

    # A 1.58 s train video (shorter than the default scene's two 2 s events) and a val video.
    config = load_config_file(f"configs/data/activitynet_subset.py:source={shared_data},"
                              "ids=v_C4V6fqELvPY+v_-CEi03j4-Bw,size=32")
    assert make_subset(config, str(tmp_path)) == {"train": ["v_C4V6fqELvPY"],
                                                  "val": ["v_-CEi03j4-Bw"]}
    val_2 = json.loads((tmp_path / "activitynet_captions" / "val_2.json").read_text())
    real = json.loads((shared_data / "activitynet_captions" / "val_2.json").read_text())
    assert val_2 == {"v_-CEi03j4-Bw": real["v_-CEi03j4-Bw"]}
    meta = _read_csv(tmp_path / "activitynet_v1.3/tsp/activitynet_v1-3_train_metadata.csv")
    assert [r["filename"] for r in meta] == ["v_C4V6fqELvPY.mp4"]
    assert (tmp_path / "videos" / "v_C4V6fqELvPY.mp4").stat().st_size > 0
    with pytest.raises(KeyError, match="v_notAnId"):
        config = load_config_file(f"configs/data/activitynet_subset.py:source={shared_data},"
                                  "ids=v_C4V6fqELvPY+v_-CEi03j4-Bw+v_notAnId")
        make_subset(config, str(tmp_path / "bad"))
    with pytest.raises(ValueError, match="only 0 of 4"):
        config = load_config_file(f"configs/data/activitynet_subset.py:source={shared_data},"
                                  "min_s=900")
        make_subset(config, str(tmp_path / "none"))
    assert not (tmp_path / "bad").exists() and not (tmp_path / "none").exists()


# ----------------------------------------------------------------------------- runlocal
@pytest.fixture(scope="module")
def runlocal(tmp_path_factory, shared_data, nltk_data_dir):
    config = load_config_file(f"{CONFIG}:runlocal,data={shared_data}")
    root = tmp_path_factory.mktemp("anet_pipeline")
    summary = run_pipeline(config, str(root))
    return root, config, summary, shared_data


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_runlocal_subset_is_the_real_annotations(runlocal):
    root, _, _, shared = runlocal
    subset = json.loads((root / "data" / "subset.json").read_text())
    assert len(subset["train"]) == 4 and len(subset["val"]) == 2
    for split, files in (("train", ("train.json", "train_modified.json")),
                         ("val", ("val_1.json", "val_2.json"))):
        for name in files:
            real = json.loads((shared / "activitynet_captions" / name).read_text())
            ours = json.loads((root / "data" / "activitynet_captions" / name).read_text())
            assert list(ours) == subset[split]
            assert all(ours[v] == real[v] for v in ours), name
    tsp = "activitynet_v1.3/tsp/activitynet_v1-3_valid_tsp_groundtruth.csv"
    real_rows = [r for r in _read_csv(shared / tsp) if f"v_{r['video-name']}" in subset["val"]]
    assert _read_csv(root / "data" / tsp) == real_rows and real_rows
    videos = sorted(os.path.basename(p) for p in glob.glob(str(root / "data/videos/*.mp4")))
    assert videos == sorted(f"{v}.mp4" for v in subset["train"] + subset["val"])


@pytest.mark.slow
def test_runlocal_every_stage_ran_and_is_wired(runlocal):
    root, config, summary, _ = runlocal
    names = [dict(s)["name"] for s in config.steps]
    assert summary["ran"] == names
    assert names == [
        "data", "text", "shards", "tsp_init", "gvf", "sa_tsp", "features", "captioner",
        "predict", "captioner_gt_seed0", "predict_gt_seed0", "captioner_gt_seed1",
        "predict_gt_seed1", "scst", "ensemble", "evaluate"]
    ids = json.loads((root / "data" / "subset.json").read_text())
    for split, n in (("train", 4), ("val", 2)):
        report = json.loads((root / "shards" / f"{split}_report.json").read_text())
        assert report["num_written"] == n and report["num_skipped"] == 0
    # SA-TSP read the GVF extracted with the TSP weights, and started from those weights.
    sa_tsp = json.loads((root / "sa_tsp" / "config.json").read_text())
    assert sa_tsp["init_from"] == f"{root}/tsp_init/params"
    assert sa_tsp["gvf_path"] == f"{root}/features_tsp/gvf_max.h5" and sa_tsp["model"]["use_gvf"]
    assert sa_tsp["data"]["concept_vocab"] == f"{root}/text/concepts.json"
    with h5py.File(root / "features_tsp" / "gvf_max.h5", "r") as f:
        assert sorted(f) == sorted(ids["train"] + ids["val"])
    # One (N, 64) feature array per video from the SA-TSP encoder.
    for vid in ids["train"] + ids["val"]:
        array = np.load(root / "features_sa_tsp" / "features" / f"{vid}.npy")
        assert array.dtype == np.float32 and array.ndim == 2 and array.shape[1] == 64
    # Both proposal modes predict the two val videos; SCST started from the GT captioner.
    for run in ("captioner", "captioner_gt_seed0", "captioner_gt_seed1"):
        submission = json.loads((root / run / "predictions" / "val_1.json").read_text())
        assert set(submission["results"]) == set(ids["val"]), run
    scst = json.loads((root / "captioner_scst" / "config.json").read_text())
    assert scst["init_from"] == f"{root}/captioner_gt_seed0"
    ensemble = json.loads((root / "ensemble" / "config.json").read_text())
    assert ensemble["predictions"] == [
        f"{root}/captioner_gt_seed{i}/predictions/val_1.json" for i in (0, 1)]


@pytest.mark.slow
def test_runlocal_metric_tables(runlocal):
    root, _, _, _ = runlocal
    tables = json.loads((root / "results.json").read_text())
    rows = {row: m for table in tables.values() for row, m in table.items()}
    assert set(rows) == {
        "captioner (SA-TSP features)", "captioner seed 0", "captioner seed 1",
        "ensemble of the 2 (concepts, then max IDF)", "XE (before SCST)", "XE + SCST",
        "captioner (SA-TSP features), learned proposals"}
    for name, metrics in rows.items():
        missing = [m for m in METRICS if m not in metrics]
        assert not missing, (name, missing)
        assert all(np.isfinite(metrics[m]) for m in METRICS), name
    for metrics in tables["GT proposals (val_1 + val_2 references)"].values():
        assert metrics["Recall"] == 100.0  # GT proposals cover every reference event
    official = rows["captioner (SA-TSP features), learned proposals"]
    assert "SODA_c" in official
    evaluated = json.loads((root / "evaluate" / "eval_results.json").read_text())
    assert evaluated["Recall"] == official["Recall"]


@pytest.mark.slow
def test_runlocal_rerun_skips_every_step(runlocal):
    root, config, _, _ = runlocal
    summary = run_pipeline(config, str(root))
    names = [dict(s)["name"] for s in config.steps]
    assert summary["ran"] == [] and summary["skipped"] == names
