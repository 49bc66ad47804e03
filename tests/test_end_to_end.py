"""The whole method end to end on the tiny synthetic config, as `make demo` runs it, with
every input and output in a (fake) `gs://` bucket, as on a Cloud TPU VM.

One pipeline run (module fixture, in-process through the pipeline stage) feeds every test:
all stages, a few steps each, workdir `gs://bkt/e2e` (tests/fake_bucket.py routes it to a
local folder, which the assertions read). The run happens in an empty working directory with
an empty temporary folder: a stage that bypassed the path layer (builtin `open` or `os.*` on a
`gs://` path) would leave a `gs:` folder there, or would not find its inputs, and local
staging files (h5py, PyAV) must be cleaned up. Then `caption_video` captions a generated mp4
that was not in the training set, read from the bucket. Slow by nature (several
compilations); everything else is checked on it.
"""
import contextlib
import glob
import html.parser
import json
import os
import shutil
import tempfile

import numpy as np
import pytest
from fake_bucket import install_fake_gcs

from data_prep.orchestration.caption_video import caption_video
from data_prep.orchestration.config_files import load_config_file
from data_prep.orchestration.pipeline import run_pipeline

pytestmark = pytest.mark.slow

METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "Recall",
           "Precision")


@contextlib.contextmanager
def _isolated_local_disk(tmp_path_factory):
    """An empty working directory and temporary folder for the block; both must stay empty."""
    cwd, tmp = tmp_path_factory.mktemp("cwd"), tmp_path_factory.mktemp("tmpdir")
    old_cwd, old_tmp = os.getcwd(), tempfile.tempdir
    os.chdir(cwd)
    tempfile.tempdir = str(tmp)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        tempfile.tempdir = old_tmp
    assert os.listdir(cwd) == [], f"files written outside the bucket: {os.listdir(cwd)}"
    assert os.listdir(tmp) == [], f"local staging files left behind: {os.listdir(tmp)}"


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e_bucket")
    install_fake_gcs(str(root))
    return root / "bkt"


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory, nltk_data_dir, bucket):
    config = load_config_file("configs/pipeline/synthetic.py:size=tiny")
    with _isolated_local_disk(tmp_path_factory):
        summary = run_pipeline(config, "gs://bkt/e2e")
    return bucket / "e2e", config, summary


def test_every_stage_ran_and_left_its_artefacts(pipeline_run):
    root, config, summary = pipeline_run
    assert summary["steps"] == [dict(s)["name"] for s in config.steps]
    expected = [
        "data/videos", "data/captions/train.json", "data/captions/val_1.json",
        "data/captions/val_2.json", "data/tsp/train_tsp_groundtruth.csv",
        "data/tsp/action_label_mapping.json",
        "data/text/caption_vocab.json", "data/text/concepts.json", "data/text/idf.json",
        "data/shards/train-00000-of-00001.tfrecord", "data/shards/val-00000-of-00001.tfrecord",
        "sa_tsp/params", "sa_tsp/metrics.jsonl",
        "features_sa_tsp/features.h5", "features_sa_tsp/gvf_max.h5",
        "captioner/metrics.jsonl", "captioner/predictions/val_1.json",
        "captioner_gt_seed0/predictions/val_1.json", "captioner_gt_seed2/predictions/val_1.json",
        "captioner_scst/metrics.jsonl", "results.md", "results.json",
    ]
    missing = [p for p in expected if not os.path.exists(root / p)]
    assert not missing, missing
    for step in map(dict, config.steps):
        assert (root / step.get("workdir", step["name"]) / f".done-{step['name']}.json").is_file()
    # One feature array per video, (N, D) float32 from the encoder.
    videos = glob.glob(str(root / "data" / "videos" / "*.mp4"))
    feats = glob.glob(str(root / "features_sa_tsp" / "features" / "*.npy"))
    assert len(feats) == len(videos) == 12
    array = np.load(feats[0])
    assert array.dtype == np.float32 and array.ndim == 2 and array.shape[1] == 64
    # The submission is in the official format and covers the validation videos.
    with open(root / "captioner" / "predictions" / "val_1.json") as f:
        submission = json.load(f)
    with open(root / "data" / "captions" / "val_1.json") as f:
        val = json.load(f)
    assert set(submission["results"]) == set(val)
    entry = next(iter(submission["results"].values()))[0]
    assert set(entry) >= {"sentence", "timestamp"}


def test_metric_tables_have_every_metric(pipeline_run):
    root, _, _ = pipeline_run
    with open(root / "results.json") as f:
        tables = json.load(f)
    rows = {row: metrics for table in tables.values() for row, metrics in table.items()}
    assert set(rows) >= {"captioner (SA-TSP features)", "captioner seed 0",
                         "captioner seed 1", "captioner seed 2",
                         "ensemble of the 3 (concepts, then max IDF)",
                         "XE (before SCST)", "XE + SCST"}
    for name, metrics in rows.items():
        missing = [m for m in METRICS if m not in metrics]
        assert not missing, (name, missing)
        assert all(np.isfinite(metrics[m]) for m in METRICS), name
    gt_rows = tables["GT proposals (val_1 + val_2 references)"]
    assert all(m["Recall"] == 100.0 for m in gt_rows.values())  # GT proposals: all covered
    text = (root / "results.md").read_text()
    assert "| tIoU |" in text and "| 0.90 |" in text  # the per-threshold table
    for metrics_file in ("sa_tsp/metrics.jsonl", "captioner/metrics.jsonl"):
        records = [json.loads(line) for line in open(root / metrics_file)]
        assert any("loss" in r for r in records), metrics_file


def test_rerun_skips_finished_steps(pipeline_run):
    root, config, _ = pipeline_run
    summary = run_pipeline(config, "gs://bkt/e2e")
    names = [dict(s)["name"] for s in config.steps]
    assert summary["ran"] == [] and summary["skipped"] == names  # nothing reruns
    assert summary["steps"] == names  # every step's result, read back from its marker


class _PageParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.scripts = [], []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)


def test_caption_a_new_video(pipeline_run, bucket, tmp_path, tmp_path_factory):
    """An mp4 from another seed (not in training) plus an unreadable file, in the bucket."""
    from configs.data.synthetic import get_config as data_config
    from data_prep.synthetic.stage import run as make_data

    root, _, _ = pipeline_run
    new = tmp_path / "new"
    cfg = data_config("size=tiny,seed=123")
    cfg.num_train, cfg.num_val = 1, 1
    make_data(cfg, str(new))
    videos = bucket / "my_videos"
    videos.mkdir()
    source = sorted(glob.glob(str(new / "videos" / "*.mp4")))[0]
    shutil.copy(source, videos / "unseen.mp4")
    (videos / "broken.mp4").write_bytes(b"not a video")
    config = load_config_file("configs/caption_video.py:run=gs://bkt/e2e,size=tiny")
    config.video = "gs://bkt/my_videos"
    out = bucket / "caption_out"
    with _isolated_local_disk(tmp_path_factory):
        result = caption_video(config, "gs://bkt/caption_out")
    assert result == {"captioned": 1, "skipped": 1}
    report = json.loads((out / "report.json").read_text())
    assert report["skipped"][0]["video"].endswith("broken.mp4")
    captions = json.loads((out / "captions.json").read_text())
    events = captions["results"]["unseen"]
    assert events and all(isinstance(e["sentence"], str) for e in events)
    png = out / "html" / "unseen_timeline.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    parser = _PageParser()
    parser.feed((out / "html" / "unseen.html").read_text())
    assert any(tag == "video" for tag, _ in parser.tags)
    assert any("timeupdate" in script for script in parser.scripts)
