"""Feature extraction: file layouts and shapes, values, GVF, resume, failed-video report."""
import json
import os
import shutil

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
from sa_tsp_jax import export, extract_features
from sa_tsp_jax.models.r2plus1d import make_backbone
from tests.sa_tsp_fixtures import NUM_FRAMES, TINY_BACKBONE_CFG, write_tiny_shards

CLIP, STRIDE = 4, 4
BACKBONE_CFG = TINY_BACKBONE_CFG


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
    # No input geometry recorded (an older export): the config gives it.
    export.save_variables(str(root / "params"),
                          {"params": {"backbone": variables["params"]},
                           "batch_stats": {"backbone": variables["batch_stats"]}}, BACKBONE_CFG)
    config = ml_collections.ConfigDict(dict(
        stage="sa_tsp_extract", mesh=[("data", -1)], init_from=str(root / "params"),
        shards=str(root / "shards" / "*.tfrecord"), dtype="float32", data=dict(batch_size=8),
        clip_length=CLIP, stride=STRIDE, resize=(24, 24), crop=16, read_threads=1,
        videos_per_chunk=8, gvf_poolings=("max", "avg"), progress_every_s=1e9, force=False))
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
    assert sorted(os.listdir(workdir)) == ["failed.json", "features", "features.h5",
                                           "fingerprint.json", "gvf_avg.h5", "gvf_max.h5",
                                           "summary.json"]


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


def _export_with_geometry(root, variables, name, **geometry):
    """The setup's backbone exported again, with an input geometry (default: the setup's)."""
    g = dict(clip_length=CLIP, fps=15.0, resize=(24, 24), crop=16)
    g.update(geometry)
    out = str(root / name)
    export.save_variables(out, {"params": {"backbone": variables["params"]},
                                "batch_stats": {"backbone": variables["batch_stats"]}},
                          BACKBONE_CFG, export.InputGeometry(**g))
    return out


def test_geometry_comes_from_the_export(setup, tmp_path):
    root, ids, _, variables, config, workdir, _ = setup
    params = _export_with_geometry(root, variables, "params_geometry")
    assert export.load_geometry(params) == export.InputGeometry(CLIP, 15.0, (24, 24), 16)
    assert export.load_geometry(config.init_from) is None  # the setup's export has none
    # Empty / 0 values: taken from the export; the features equal the setup's.
    cfg = ml_collections.ConfigDict({**config.to_dict(), "init_from": params,
                                     "clip_length": 0, "resize": (), "crop": 0,
                                     "shards": str(root / "shards" / "train-*.tfrecord")})
    out = str(tmp_path / "out")
    summary = extract_features.run(cfg, out)
    assert summary["extracted_now"] == 3 and summary["failed"] == 0
    for vid in ids:
        np.testing.assert_array_equal(np.load(os.path.join(out, "features", f"{vid}.npy")),
                                      np.load(os.path.join(workdir, "features", f"{vid}.npy")))
    # A given value must equal the export's.
    with pytest.raises(ValueError, match=r"crop=20 .* trained with crop=16"):
        extract_features.run(ml_collections.ConfigDict({**cfg.to_dict(), "crop": 20}), out)
    # Shards at another frame rate than the encoder saw are refused, naming a video.
    other_fps = _export_with_geometry(root, variables, "params_30fps", fps=30.0)
    with pytest.raises(ValueError, match=r"v_tiny000 .* 15.0 fps .* 30.0 fps"):
        extract_features.run(ml_collections.ConfigDict(
            {**cfg.to_dict(), "init_from": other_fps}), str(tmp_path / "out30"))
    # An export without a geometry needs all of it in the config.
    with pytest.raises(ValueError, match="records no input geometry; give clip_length"):
        extract_features.run(ml_collections.ConfigDict(
            {**cfg.to_dict(), "init_from": config.init_from}), str(tmp_path / "out_none"))


def test_other_encoder_into_same_workdir_is_refused_then_forced(setup, tmp_path):
    root, ids, _, variables, config, workdir, _ = setup
    out = str(tmp_path / "copy")
    shutil.copytree(workdir, out)
    changed = jax.tree.map(lambda x: x * 1.5, variables)
    params = _export_with_geometry(root, changed, "params_changed")
    cfg = ml_collections.ConfigDict({**config.to_dict(), "init_from": params})
    # Not "3 already extracted": the stage names what changed and how to force.
    with pytest.raises(ValueError, match=r"encoder variables differ.*force=True"):
        extract_features.run(cfg, out)
    before = np.load(os.path.join(out, "features", f"{ids[0]}.npy"))
    cfg.force = True
    summary = extract_features.run(cfg, out)
    assert summary["extracted_now"] == 3 and summary["num_with_features"] == 3
    after = np.load(os.path.join(out, "features", f"{ids[0]}.npy"))
    assert not np.allclose(before, after)
    with h5py.File(os.path.join(out, "features.h5")) as h5:
        np.testing.assert_array_equal(h5[ids[0]][()], after)
    # Recorded: the next run with these params resumes instead of redoing or refusing.
    cfg.force = False
    assert extract_features.run(cfg, out)["extracted_now"] == 0
    # A changed shard (size/mtime) is named too.
    shard = root / "shards" / "train-00000-of-00001.tfrecord"
    st = os.stat(shard)
    os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns + 10**10))
    try:
        with pytest.raises(ValueError, match="shard changed"):
            extract_features.run(cfg, out)
    finally:
        os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns))
