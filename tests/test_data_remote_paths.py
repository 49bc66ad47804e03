"""data_prep and the visualisations on a `gs://` bucket (tests/fake_bucket.py: gs:// -> a local
folder through fsspec, as gcsfs would serve it): the synthetic generator, the text stage, the
shard writer and its random-access reader (with Grain's read threads), video decoding and
the timeline/page/curves writers read and write only there, and nothing lands in the
working directory (code that bypasses the path layer would create a local `gs:` folder)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from fake_bucket import install_fake_gcs

from data_prep.infra import paths
from data_prep.labels.video_labels import build_video_labels
from data_prep.pipelines import ClipShardSource, sliding_window_batches
from data_prep.shards.stage import write_split_shards
from data_prep.synthetic.generator import DatasetOptions, generate_dataset
from data_prep.synthetic.scene_sampler import SceneOptions
from data_prep.video import decode_video, video_duration_s

DATA = "gs://bucket/data"


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    """The fake bucket's folder and a generated data set in gs://bucket/data."""
    root = tmp_path_factory.mktemp("bucket")
    install_fake_gcs(str(root))
    cwd = tmp_path_factory.mktemp("cwd")
    old = os.getcwd()
    os.chdir(cwd)
    try:
        generate_dataset(DATA, DatasetOptions(
            num_train=2, num_val=1, seed=3, workers=1,
            scene=SceneOptions(min_duration_s=3.0, max_duration_s=3.5, height=32, width=32,
                               max_events=2, min_event_s=1.2)))
        yield root, cwd
    finally:
        os.chdir(old)
    assert os.listdir(cwd) == []  # nothing written beside the process


def test_generator_writes_the_data_set_into_the_bucket(bucket):
    root, _ = bucket
    local = root / "bucket" / "data"
    assert len(list((local / "videos").glob("*.mp4"))) == 3
    assert json.loads((local / "captions" / "train.json").read_text())
    assert paths.glob(f"{DATA}/videos/*.mp4") == sorted(
        f"{DATA}/videos/{p.name}" for p in (local / "videos").glob("*.mp4"))
    assert not list(local.rglob("*tmp*"))  # temporaries landed or were removed


def test_video_decodes_from_the_bucket(bucket):
    video = paths.glob(f"{DATA}/videos/*.mp4")[0]
    decoded = decode_video(video, fps=15.0)
    assert decoded.frames.shape[1:] == (32, 32, 3)
    assert abs(video_duration_s(video) - decoded.duration) < 0.1


def test_text_stage_on_bucket(bucket, nltk_data_dir):
    from configs.data.text_synthetic import get_config
    from data_prep.text.caption_vocab import CaptionVocab
    from data_prep.text.stage import run

    config = get_config(f"data_dir={DATA}")
    config.workers = 1
    result = run(config, f"{DATA}/text")
    assert CaptionVocab.load(f"{DATA}/text/caption_vocab.json").size == result[
        "caption_vocab_size"]
    assert paths.is_file(f"{DATA}/text/sentence_concepts/val_2.json")


def test_shards_written_to_and_read_from_the_bucket(bucket):
    root, _ = bucket
    labels = build_video_labels(f"{DATA}/tsp/train_tsp_groundtruth.csv",
                                f"{DATA}/tsp/action_label_mapping.json",
                                f"{DATA}/captions/train.json",
                                metadata=f"{DATA}/tsp/train_metadata.csv", min_segment_s=0.5)
    out = "gs://bucket/shards"
    report = write_split_shards(labels, f"{DATA}/videos", out, "train", 2, 15.0, None)
    assert report["num_written"] == 2 and report["num_skipped"] == 0
    assert sorted(p.name for p in (root / "bucket" / "shards").iterdir()) == [
        "train-00000-of-00002.tfrecord", "train-00000-of-00002.tfrecord.index.json",
        "train-00001-of-00002.tfrecord", "train-00001-of-00002.tfrecord.index.json",
        "train_report.json"]
    again = write_split_shards(labels, f"{DATA}/videos", out, "train", 2, 15.0, None)
    assert again["resumed_shards"] == report["shards"]  # finished shards are kept

    source = ClipShardSource(paths.glob(f"{out}/train-*.tfrecord"))
    local = ClipShardSource(sorted(str(p) for p in (root / "bucket" / "shards").glob(
        "*.tfrecord")))
    assert source.video_ids == local.video_ids
    for i in range(len(source)):
        assert source.read_bytes(i) == local.read_bytes(i)
    # Grain's read threads share the remote file objects (seek + read under a lock).
    batches = list(sliding_window_batches(source, batch_size=2, clip_length=8, stride=8,
                                          resize=None, crop=32, process_index=0,
                                          process_count=1, read_threads=4))
    expected = list(sliding_window_batches(local, batch_size=2, clip_length=8, stride=8,
                                           resize=None, crop=32, process_index=0,
                                           process_count=1, read_threads=1))
    assert len(batches) == len(expected) > 1
    for got, want in zip(batches, expected):
        np.testing.assert_array_equal(got["clips"], want["clips"])


def test_visualisations_write_into_the_bucket(bucket, tmp_path):
    from captioner_jax.visualization.curves import plot_training_curves
    from captioner_jax.visualization.gallery import render_video_result

    root, _ = bucket
    video = paths.glob(f"{DATA}/videos/*.mp4")[0]
    info = render_video_result("gs://bucket/html", "v_x", [
        {"timestamp": [0.5, 2.0], "sentence": "a red ball moves."}], video_path=video,
        num_thumbnails=2)
    assert info["timeline_png"] == "gs://bucket/html/v_x_timeline.png"
    local = root / "bucket" / "html"
    assert (local / "v_x_timeline.png").read_bytes()[:4] == b"\x89PNG"
    page = (local / "v_x.html").read_text()
    assert f'src="{video}"' in page  # a remote video is referred to by its URI
    paths.as_path("gs://bucket/run/metrics.jsonl").write_text(
        '{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.0}\n')
    assert plot_training_curves(["gs://bucket/run/metrics.jsonl"],
                                "gs://bucket/run/curves.png") == ["loss"]
    assert (root / "bucket" / "run" / "curves.png").read_bytes()[:4] == b"\x89PNG"
