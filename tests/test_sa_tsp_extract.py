"""Feature extraction: file layouts and shapes, values, GVF, resume, failed-video report."""
import json
import os

import h5py
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from data_prep.labels.types import VideoLabels
from data_prep.pipelines.clip_transforms import crop_and_flip, decode_clip, normalize
from data_prep.pipelines.source import ClipShardSource
from data_prep.shards.records import encode_video_record
from data_prep.shards.tfrecord import TFRecordWriter
from sa_tsp_jax import extract_features, import_torch
from sa_tsp_jax.models.r2plus1d import make_backbone
from tests.sa_tsp_fixtures import NUM_FRAMES, write_tiny_shards

CLIP, STRIDE = 4, 4


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("extract")
    paths, ids = write_tiny_shards(str(root / "shards"), num_videos=3, num_shards=1)
    # A corrupt video: frames that are not JPEG.
    bad = VideoLabels("v_corrupt", 3.0, [[0, 3]], [0], [0], [], [])
    with TFRecordWriter(str(root / "shards" / "bad-00000-of-00001.tfrecord")) as w:
        w.write(encode_video_record("v_corrupt", 15.0, 3.0, [b"not a jpeg"] * 45, 24, 24, bad))
    model = make_backbone("small")
    variables = jax.jit(model.init)(jax.random.key(0, impl="rbg"),
                                   jnp.zeros((1, CLIP, 16, 16, 3)))
    # Non-trivial running statistics, so eval-mode BN is exercised.
    variables = jax.tree.map(np.asarray, variables)
    variables["batch_stats"] = jax.tree.map(lambda x: x + 0.1, variables["batch_stats"])
    cfg = dict(stage_sizes=(1, 1, 1, 1), widths=(8, 16, 32, 64), stem_width=6,
               midplane_rule="tsp")
    import_torch.save_variables(str(root / "params"),
                                {"params": {"backbone": variables["params"]},
                                 "batch_stats": {"backbone": variables["batch_stats"]}}, cfg)
    config = ml_collections.ConfigDict(dict(
        stage="sa_tsp_extract", mesh=[("data", -1)], params_dir=str(root / "params"),
        shards=str(root / "shards" / "*.tfrecord"), dtype="float32", batch_size=8,
        clip_length=CLIP, stride=STRIDE, resize=(24, 24), crop=16, read_threads=1,
        videos_per_chunk=8, gvf_poolings=("max", "avg"), progress_every_s=1e9))
    workdir = str(root / "out")
    summary = extract_features.run(config, workdir)
    return root, ids, model, variables, config, workdir, summary


def test_outputs_layout_and_failed_report(setup):
    root, ids, _, _, _, workdir, summary = setup
    n = (NUM_FRAMES - CLIP) // STRIDE + 1
    assert summary["extracted_now"] == 3 and summary["failed"] == 1
    with open(os.path.join(workdir, "failed.json")) as f:
        failed = json.load(f)
    assert [x["video_id"] for x in failed] == ["v_corrupt"]
    with h5py.File(os.path.join(workdir, "features.h5")) as h5:
        assert sorted(h5.keys()) == sorted(ids)
        for vid in ids:
            arr = np.load(os.path.join(workdir, "features", f"{vid}.npy"))
            assert arr.shape == (n, 64) and arr.dtype == np.float32
            np.testing.assert_array_equal(h5[vid][()], arr)
            with h5py.File(os.path.join(workdir, "gvf_max.h5")) as g:
                np.testing.assert_allclose(g[vid][()], arr.max(0))
            with h5py.File(os.path.join(workdir, "gvf_avg.h5")) as g:
                np.testing.assert_allclose(g[vid][()], arr.mean(0), rtol=1e-6)
    assert not [p for p in os.listdir(workdir) if ".tmp" in p]


def test_features_equal_direct_forward(setup):
    root, ids, model, variables, _, workdir, _ = setup
    source = ClipShardSource([str(root / "shards" / "train-00000-of-00001.tfrecord")])
    record = source[1]
    rows = [0, 5, 10]
    clips = np.stack([normalize(crop_and_flip(decode_clip(record.frames, r * STRIDE, CLIP,
                                                          (24, 24)), 16, False, None))
                      for r in rows])
    want = np.asarray(jax.jit(model.apply)(variables, clips))
    got = np.load(os.path.join(workdir, "features", f"{record.video_id}.npy"))[rows]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_rerun_skips_done_videos(setup):
    _, ids, _, _, config, workdir, _ = setup
    before = os.path.getmtime(os.path.join(workdir, "features", f"{ids[0]}.npy"))
    summary = extract_features.run(config, workdir)
    assert summary["extracted_now"] == 0 and summary["num_with_features"] == 3
    assert os.path.getmtime(os.path.join(workdir, "features", f"{ids[0]}.npy")) == before
