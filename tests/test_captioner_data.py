"""Feature loading (PDVC resize vs SciPy, formats, normalisation, missing files) and the
caption Grain pipeline (shapes, masks, padding, per-host slices, resume)."""
import h5py
import numpy as np
import pytest
from scipy.interpolate import interp1d

from captioner_jax.data.features import (
    FeatureLoader,
    FeatureSource,
    MissingFeatureError,
    resize_nearest,
)
from captioner_jax.data.pipeline import CaptionInputConfig, caption_dataset
from data_prep.annotations.activitynet_captions import VideoCaptions
from data_prep.text.caption_vocab import build_caption_vocab


@pytest.mark.parametrize("n,new", [(7, 100), (250, 100), (100, 100), (2, 5), (1, 4), (13, 6)])
def test_resize_matches_scipy_nearest(n, new):
    x = np.random.default_rng(n).normal(size=(n, 3)).astype(np.float32)
    got = resize_nearest(x, new)
    if n == 1:
        want = np.repeat(x, new, axis=0)
    else:  # PDVC resizeFeature, computed by SciPy itself
        f = interp1d(np.arange(n), x, axis=0, kind="nearest")
        want = f([i * float(n - 1) / (new - 1) for i in range(new)])
    np.testing.assert_array_equal(got, want)


def test_sources_combined_normalised_and_missing(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "tsp").mkdir()
    (tmp_path / "i3d").mkdir()
    a = rng.normal(size=(10, 4)).astype(np.float32)
    np.save(tmp_path / "tsp" / "v_abc.npy", a)
    rgb, flow = rng.normal(size=(6, 2)), rng.normal(size=(7, 2))
    np.save(tmp_path / "i3d" / "abc_rgb.npy", rgb)
    np.save(tmp_path / "i3d" / "abc_flow.npy", flow)
    with h5py.File(tmp_path / "feats.h5", "w") as f:
        f["v_abc"] = rng.normal(size=(3, 5))
    loader = FeatureLoader([
        FeatureSource("tsp", str(tmp_path / "tsp"), mean=1.0, std=2.0),
        FeatureSource("i3d", str(tmp_path / "i3d"), format="bmt_i3d",
                      pattern="{youtube_id}_{stream}.npy"),
        FeatureSource("h5", str(tmp_path / "feats.h5"), format="hdf5"),
    ], num_steps=8)
    out = loader.load("v_abc")
    assert out.shape == (8, 4 + 4 + 5) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, :4], (resize_nearest(a, 8) - 1.0) / 2.0, rtol=1e-6)
    np.testing.assert_allclose(out[:, 4:8], resize_nearest(
        np.concatenate([rgb[:6], flow[:6]], -1), 8), rtol=1e-6)
    assert loader.find_missing(["v_abc", "v_zzz"]) == {"v_zzz": ["tsp", "i3d", "h5"]}
    with pytest.raises(MissingFeatureError, match="v_zzz"):
        loader.load("v_zzz")
    zero = FeatureLoader([FeatureSource("tsp", str(tmp_path / "tsp"), dim=4)], num_steps=8,
                         zero_fill_missing=True)
    np.testing.assert_array_equal(zero.load("v_zzz"), np.zeros((8, 4)))


def _videos(n):
    out = {}
    for i in range(n):
        k = 1 + i % 3
        ts = np.asarray([[j, j + 2.0] for j in range(k)], np.float64)
        out[f"v_{i:03d}"] = VideoCaptions(f"v_{i:03d}", 10.0, ts,
                                          [f"a red square {j}" for j in range(k)])
    return out


def test_pipeline_batches_masks_slices_and_resume(tmp_path):
    videos = _videos(7)
    for vid in videos:
        np.save(tmp_path / f"{vid}.npy", np.ones((5, 3), np.float32))
    loader = FeatureLoader([FeatureSource("f", str(tmp_path))], num_steps=6)
    vocab = build_caption_vocab([s for v in videos.values() for s in v.sentences], 1)
    cfg = CaptionInputConfig(batch_size=2, num_steps=6, max_events=2, max_caption_len=8,
                             read_threads=1)
    ids = list(videos)
    ds = caption_dataset(ids, videos, loader, vocab, cfg, seed=3, train=True,
                         process_index=0, process_count=1)
    it = iter(ds)
    b = next(it)
    assert b["feats"].shape == (2, 6, 3) and b["captions"].shape == (2, 2, 8)
    for i in range(2):
        vid = ids[int(b["index"][i])]
        n = min(len(videos[vid].sentences), 2)
        assert b["num_events"][i] == n and b["gt_valid"][i].tolist() == [True] * n + [False] * (
            2 - n)
        # "a red square j" -> BOS + 4 words + EOS = 6 tokens in the mask.
        assert b["caption_mask"][i, 0].sum() == 6 and b["captions"][i, 0, 5] == 0
        np.testing.assert_allclose(b["gt_boxes"][i, 0], [0.1, 0.2], rtol=1e-6)
    state = it.get_state()
    nxt = [next(it)["index"].tolist() for _ in range(3)]
    it2 = iter(ds)
    it2.set_state(state)
    assert [next(it2)["index"].tolist() for _ in range(3)] == nxt
    # Evaluation: two hosts see disjoint videos, all of them, padded to whole batches.
    seen = []
    for host in range(2):
        ev = caption_dataset(ids, videos, loader, vocab, cfg, seed=0, train=False,
                             process_index=host, process_count=2)
        batches = list(ev)
        assert all(len(x["valid"]) == 2 for x in batches)
        seen += [int(i) for x in batches for i, v in zip(x["index"], x["valid"]) if v]
    assert sorted(seen) == list(range(7))
