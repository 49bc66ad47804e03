"""Grain pipelines over clip shards: TSP clip sampling/transforms against an independent
computation, per-host disjointness, exact resume, and the sliding-window extraction pipeline."""
from __future__ import annotations

import math

import numpy as np
import pytest
import shard_fixtures as fx

from data_prep.labels.types import IGNORE_INDEX
from data_prep.pipelines import (
    TSP_MEAN,
    TSP_STD,
    ClipShardSource,
    SegmentClipTable,
    TspInputConfig,
    num_sliding_clips,
    sliding_window_batches,
    tsp_train_dataset,
)
from data_prep.shards import write_shards
from data_prep.video import decode_jpeg

NUM_CONCEPTS = 8
CFG = TspInputConfig(batch_size=4, clip_length=4, fps=15.0, clips_per_segment=3,
                     resize=(24, 32), crop=16, num_concepts=NUM_CONCEPTS, read_threads=2,
                     prefetch_buffer=2)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    items, _ = fx.make_video_set(tmp_path_factory.mktemp("pvideos"))
    out = tmp_path_factory.mktemp("pshards")
    report = write_shards(items, str(out), num_shards=2, fps=15, resize=(24, 32),
                          show_progress=False)
    return ClipShardSource(report["shards"])


def _dataset(source, train, **kw):
    kw.setdefault("process_index", 0)
    kw.setdefault("process_count", 1)
    return tsp_train_dataset(source, CFG, seed=7, train=train, concept_fn=fx.toy_concepts, **kw)


def _normalized_frames(source, rec, start, length):
    """Independent reference: TSP order float/255 -> normalize, on the stored frames."""
    frames = np.stack([decode_jpeg(f) for f in source[rec].frames[start:start + length]])
    return ((frames.astype(np.float64) / 255 - np.asarray(TSP_MEAN)) / np.asarray(TSP_STD))


def test_eval_batches_match_tsp_sampling_and_transform(source):
    table = SegmentClipTable(source, CFG.clip_length, CFG.fps, CFG.clips_per_segment)
    assert len(table) == 4 * 3 * 3  # 4 videos x 3 segments x 3 clips
    batches = list(_dataset(source, train=False))
    assert len(batches) == 9
    seen = 0
    for b in batches:
        assert b["clips"].shape == (4, 4, 16, 16, 3) and b["clips"].dtype == np.float32
        for j in range(4):
            row = int(b["element_id"][j])
            rec, seg, k = table.record[row], table.segment[row], table.clip_k[row]
            labels = source.labels(rec)
            t0, t1 = labels.segments[seg]
            # TSP: t = t_start + linspace(0, 1, K)[k] * (t_end - t_start - clip_s), then the
            # first frame at or after t.
            t = t0 + np.linspace(0, 1, 3)[k] * (t1 - t0 - 4 / 15)
            start = min(math.ceil(t * 15 - 1e-6), source.num_frames[rec] - 4)
            assert b["clip_start_s"][j] == pytest.approx(start / 15)
            ref = _normalized_frames(source, rec, start, 4)[:, 4:20, 8:24]  # center 16 of 24x32
            np.testing.assert_allclose(b["clips"][j], ref, atol=1e-5)
            assert b["action_label"][j] == labels.action_labels[seg]
            assert b["region_label"][j] == labels.region_labels[seg]
            np.testing.assert_array_equal(
                b["concepts"][j],
                fx.toy_concepts(start / 15, start / 15 + 4 / 15, labels, NUM_CONCEPTS, None))
            assert b["video_id"][j] == source.video_ids[rec]
            seen += 1
    assert seen == 36 and all(b["valid"].all() for b in batches)
    assert IGNORE_INDEX in np.concatenate([b["action_label"] for b in batches])


def test_train_clips_are_random_crops_and_flips_inside_the_segment(source):
    table = SegmentClipTable(source, CFG.clip_length, CFG.fps, CFG.clips_per_segment)
    it = iter(_dataset(source, train=True))
    flips = 0
    for _ in range(2):
        b = next(it)
        for j in range(4):
            row = int(b["element_id"][j])
            rec = int(table.record[row])
            start = int(round(b["clip_start_s"][j] * 15))
            assert table.t_start[row] - 1 / 15 <= start / 15 <= table.t_end[row] - 4 / 15 + 1e-6
            full = _normalized_frames(source, rec, start, 4)
            got = b["clips"][j]
            matches = [
                (top, left, flip)
                for top in range(24 - 16 + 1) for left in range(32 - 16 + 1)
                for flip in (False, True)
                if np.allclose(got, (full[:, top:top + 16, left:left + 16][:, :, ::-1] if flip
                                     else full[:, top:top + 16, left:left + 16]), atol=1e-5)
            ]
            assert matches, "train clip is not a crop (or flipped crop) of the stored frames"
            flips += matches[0][2]
    assert 0 < flips < 8  # both flipped and unflipped clips occur (seeded)


def test_hflip_false_keeps_the_crops_and_never_mirrors(source):
    """hflip=False (synthetic "Moving left" / "Moving right" labels): the same random crops
    as with flips (the coin is still drawn), none of them mirrored."""
    import dataclasses

    def batches(cfg):
        ds = tsp_train_dataset(source, cfg, seed=7, train=True, concept_fn=fx.toy_concepts,
                               process_index=0, process_count=1)
        it = iter(ds)
        return [next(it) for _ in range(2)]

    no_flip = batches(dataclasses.replace(CFG, hflip=False))
    flip = batches(CFG)
    mirrored = 0
    for a, b in zip(no_flip, flip):
        np.testing.assert_array_equal(a["element_id"], b["element_id"])
        for j in range(4):
            same = np.array_equal(a["clips"][j], b["clips"][j])
            mirror = np.array_equal(a["clips"][j][:, :, ::-1], b["clips"][j])
            assert same or mirror  # the same crop position
            mirrored += not same
    assert mirrored > 0  # the flipped run did mirror some of these crops


def test_two_hosts_see_disjoint_halves(source):
    train = [np.concatenate([b["element_id"] for b in _dataset(
        source, train=True, num_epochs=1, process_index=h, process_count=2)]) for h in (0, 1)]
    assert len(train[0]) == len(train[1]) == 16  # 18 per host, partial batch dropped
    assert not set(train[0]) & set(train[1])
    evals = [list(_dataset(source, train=False, process_index=h, process_count=2))
             for h in (0, 1)]
    assert len(evals[0]) == len(evals[1]) == 5  # 18 clips per host -> 5 padded batches
    ids = [np.concatenate([b["element_id"][b["valid"]] for b in e]) for e in evals]
    assert not set(ids[0]) & set(ids[1])
    assert sorted(np.concatenate(ids)) == list(range(36))


def test_resumed_iterator_yields_the_same_next_batch(source):
    ds = _dataset(source, train=True)
    it = iter(ds)
    first_epoch = [next(it) for _ in range(9)]  # 36 elements per epoch = 9 batches
    state = it.get_state()
    expected = next(it)
    it2 = iter(_dataset(source, train=True))
    it2.set_state(state)
    got = next(it2)
    assert set(got) == set(expected)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])
    # Epoch 2 is reshuffled with the same elements.
    epoch2 = [expected] + [next(it) for _ in range(8)]
    order1 = np.concatenate([b["element_id"] for b in first_epoch])
    order2 = np.concatenate([b["element_id"] for b in epoch2])
    assert sorted(order1) == sorted(order2) == list(range(36))
    assert not np.array_equal(order1, order2)


def test_sliding_window_covers_every_clip_once(source):
    assert num_sliding_clips(30, 4, 4) == 7 and num_sliding_clips(3, 16, 16) == 1
    assert num_sliding_clips(32, 16, 16) == 2 and num_sliding_clips(31, 16, 16) == 1
    hosts = [list(sliding_window_batches(source, batch_size=4, clip_length=4, stride=4,
                                         resize=(24, 32), crop=16, process_index=h,
                                         process_count=2, read_threads=2)) for h in (0, 1)]
    assert len(hosts[0]) == len(hosts[1])
    seen = {}
    for batches in hosts:
        for b in batches:
            for j in np.flatnonzero(b["valid"]):
                key = (str(b["video_id"][j]), int(b["clip_index"][j]))
                assert key not in seen
                seen[key] = b["clips"][j]
                assert b["num_clips"][j] == num_sliding_clips(
                    int(source.num_frames[b["video_index"][j]]), 4, 4)
    expected = {(v, n) for i, v in enumerate(source.video_ids)
                for n in range(num_sliding_clips(int(source.num_frames[i]), 4, 4))}
    assert set(seen) == expected
    vid = source.video_ids[1]
    ref = _normalized_frames(source, 1, 2 * 4, 4)[:, 4:20, 8:24]
    np.testing.assert_allclose(seen[(vid, 2)], ref, atol=1e-5)
