"""Video decoding, TFRecord framing (checked against an independent pure-Python CRC32C),
SequenceExample records and the resumable shard writer."""
from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest
import shard_fixtures as fx
from tensorflow_datasets.proto import tf_example_generated_pb2 as pb

from data_prep.pipelines import ClipShardSource
from data_prep.shards import (
    TFRecordCorruptError,
    frame_record,
    index_path,
    masked_crc32c,
    scan_tfrecord,
    write_shards,
)
from data_prep.video import VideoDecodeError, decode_jpeg, decode_video

# ---------------------------------------------------------------- independent CRC32C


def _crc32c_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1  # reflected Castagnoli polynomial
        table.append(c)
    return table


_TABLE = _crc32c_table()


def py_crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def py_masked(data: bytes) -> int:
    c = py_crc32c(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def hand_framed(data: bytes) -> bytes:
    """A TFRecord as TensorFlow's record_writer.cc lays it out, built by hand."""
    n = struct.pack("<Q", len(data))
    return n + struct.pack("<I", py_masked(n)) + data + struct.pack("<I", py_masked(data))


def test_crc32c_matches_independent_implementation():
    assert py_crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value (RFC 3720)
    for data in (b"", b"a", b"123456789", bytes(range(256)) * 3):
        assert masked_crc32c(data) == py_masked(data)
    assert frame_record(b"hello") == hand_framed(b"hello")


def _hand_sequence_example(video_id: str, frames: list[bytes]) -> bytes:
    """Our schema, assembled field by field with the protobuf API (not our encoder)."""
    ex = pb.SequenceExample()
    c = ex.context.feature
    c["video_id"].bytes_list.value.append(video_id.encode())
    c["fps"].float_list.value.append(15.0)
    c["duration"].float_list.value.append(len(frames) / 15.0)
    c["num_frames"].int64_list.value.append(len(frames))
    c["height"].int64_list.value.append(8)
    c["width"].int64_list.value.append(8)
    c["labels/duration"].float_list.value.append(2.5)
    c["labels/segments"].float_list.value.extend([0.0, 1.5, 1.5, 2.5])
    c["labels/action"].int64_list.value.extend([7, -1])
    c["labels/region"].int64_list.value.extend([0, 1])
    c["labels/event_segments"].float_list.value.extend([0.25, 2.0])
    for f in frames:
        ex.feature_lists.feature_list["frames"].feature.add().bytes_list.value.append(f)
    ex.feature_lists.feature_list["labels/event_concepts"].feature.add().int64_list.value.extend(
        [3, 9])
    return ex.SerializeToString()


def test_reads_hand_assembled_tfrecord_file_without_index(tmp_path):
    from data_prep.video import encode_jpeg

    frames = [encode_jpeg(np.full((8, 8, 3), 30 * i, np.uint8)) for i in range(3)]
    payloads = [_hand_sequence_example("v_a", frames), _hand_sequence_example("v_b", frames[:2])]
    path = tmp_path / "foreign.tfrecord"
    path.write_bytes(b"".join(hand_framed(p) for p in payloads))
    assert [d for _, d in scan_tfrecord(str(path))] == payloads
    src = ClipShardSource([str(path)])  # no index file: built by scanning
    assert len(src) == 2 and src.video_ids == ["v_a", "v_b"]
    rec = src[1]
    assert rec.num_frames == 2 and rec.fps == 15.0
    np.testing.assert_allclose(decode_jpeg(rec.frames[1]), 30, atol=2)
    lab = src.labels(0)
    np.testing.assert_array_equal(lab.segments, [[0.0, 1.5], [1.5, 2.5]])
    np.testing.assert_array_equal(lab.action_labels, [7, -1])
    np.testing.assert_array_equal(lab.event_concepts[0], [3, 9])


def test_corrupt_tfrecord_is_reported_with_file_and_offset(tmp_path):
    good, bad = hand_framed(b"first record"), bytearray(hand_framed(b"second record"))
    bad[14] ^= 0x01  # flip a data bit
    path = tmp_path / "x.tfrecord"
    path.write_bytes(good + bytes(bad))
    with pytest.raises(TFRecordCorruptError, match=rf"x.tfrecord: bad data checksum.*{len(good)}"):
        list(scan_tfrecord(str(path)))
    path.write_bytes(good + hand_framed(b"third")[:-3])
    with pytest.raises(TFRecordCorruptError, match="runs past end of file"):
        list(scan_tfrecord(str(path)))


# ---------------------------------------------------------------- decoding


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return fx.make_video_set(tmp_path_factory.mktemp("videos"))


def test_decode_resamples_like_tsp(videos):
    items, _ = videos
    path, labels = items[0]  # 60 source frames at 30 fps
    v = decode_video(path, fps=15)
    assert v.frames.shape == (30, fx.HEIGHT, fx.WIDTH, 3)  # floor(60 * 15 / 30)
    assert v.source_fps == 30 and abs(v.duration - 2.0) < 1e-3
    # TSP: output frame i = source frame floor(i * 30 / 15) = 2i, red channel = 16 i.
    red = v.frames[:, :, :, 0].mean(axis=(1, 2))
    np.testing.assert_allclose(red, (16 * np.arange(30)) % 256, atol=4)
    v10 = decode_video(path, fps=10, resize=24)  # shorter side 24 -> 24 x 32
    assert v10.frames.shape == (20, 24, 32, 3)
    np.testing.assert_allclose(v10.frames[:, :, :, 0].mean(axis=(1, 2)),
                               (24 * np.arange(20)) % 256, atol=4)
    assert decode_video(path, fps=15, resize=(20, 30)).frames.shape[1:3] == (20, 30)


def test_decode_errors_name_the_file(videos, tmp_path):
    items, _ = videos
    bad = [p for p, lab in items if lab.video_id == "v_bad"][0]
    with pytest.raises(VideoDecodeError, match="v_bad.mp4"):
        decode_video(bad)
    with pytest.raises(VideoDecodeError, match="file not found"):
        decode_video(str(tmp_path / "missing.mp4"))


# ---------------------------------------------------------------- writer


@pytest.fixture(scope="module")
def shards(videos, tmp_path_factory):
    items, _ = videos
    out = tmp_path_factory.mktemp("shards")
    report = write_shards(items, str(out), num_shards=2, fps=15, resize=(24, 32),
                          show_progress=False)
    return out, report


def test_shards_round_trip_frames_and_labels(videos, shards):
    items, bad_id = videos
    out, report = shards
    src = ClipShardSource(report["shards"])
    good = [(p, lab) for p, lab in items if lab.video_id != bad_id]
    assert sorted(src.video_ids) == sorted(lab.video_id for _, lab in good)
    for path, labels in good:
        i = src.index_of(labels.video_id)
        rec = src[i]
        ref = decode_video(path, fps=15, resize=(24, 32)).frames
        got = np.stack([decode_jpeg(f) for f in rec.frames])
        assert got.shape == ref.shape and rec.height == 24 and rec.width == 32
        assert np.abs(got.astype(int) - ref).mean() < 2.0  # JPEG q90 tolerance
        for lab in (rec.labels, src.labels(i)):
            assert lab.video_id == labels.video_id
            assert lab.duration == pytest.approx(labels.duration, rel=1e-6)
            for field in ("segments", "action_labels", "region_labels", "event_segments"):
                np.testing.assert_array_equal(getattr(lab, field), getattr(labels, field))
            assert [c.tolist() for c in lab.event_concepts] == [
                c.tolist() for c in labels.event_concepts]


def test_subset_is_a_full_source_over_some_records(shards):
    import pickle

    _, report = shards
    src = ClipShardSource(report["shards"])
    sub = src.subset([3, 0])
    assert isinstance(sub, ClipShardSource) and len(sub) == 2
    assert sub.video_ids == [src.video_ids[3], src.video_ids[0]]
    np.testing.assert_array_equal(sub.num_frames, src.num_frames[[3, 0]])
    assert sub.read_bytes(0) == src.read_bytes(3) and sub[1].video_id == src.video_ids[0]
    assert sub.labels(0).video_id == src.video_ids[3] and sub.entry(1) == src.entry(0)
    assert sub.index_of(src.video_ids[0]) == 1
    # Inherited behaviour works because the subset is built by __init__: pickling (Grain
    # workers), nested subsets, and errors naming the record's place in its shard.
    again = pickle.loads(pickle.dumps(sub.subset([1])))
    assert again.read_bytes(0) == src.read_bytes(0)
    assert sub._where(0) == src._where(3)
    with pytest.raises(IndexError, match="out of range"):
        src.subset([len(src)])


def test_corrupt_video_is_skipped_and_reported(shards, videos):
    _, bad_id = videos
    out, report = shards
    assert report["num_videos"] == 5 and report["num_written"] == 4
    assert report["num_skipped"] == 1
    (s,) = report["skipped"]
    assert s["video_id"] == bad_id and "v_bad.mp4" in s["error"]
    assert json.loads((out / "report.json").read_text())["skipped"] == report["skipped"]


def test_index_offsets_point_at_records(shards):
    _, report = shards
    for shard in report["shards"]:
        index = json.loads(open(index_path(shard)).read())
        scanned = [off for off, _ in scan_tfrecord(shard)]
        assert [r["offset"] for r in index["records"]] == scanned


def test_writer_resumes_finished_shards_and_parallel_matches(videos, shards, tmp_path):
    items, _ = videos
    out, report = shards
    before = {p: os.path.getmtime(p) for p in report["shards"]}
    stale = out / ".clips-00000-of-00002.tfrecord.tmp-k1ll3d.tfrecord"  # of a killed run
    stale.write_bytes(b"half a shard")
    again = write_shards(items, str(out), num_shards=2, fps=15, resize=(24, 32),
                         show_progress=False)
    assert not stale.exists()
    assert again["resumed_shards"] == report["shards"] and again["written_shards"] == []
    assert {p: os.path.getmtime(p) for p in report["shards"]} == before
    assert again["num_skipped"] == 1  # the report still lists the skipped video

    # A parallel writer into a fresh directory produces byte-identical shards.
    par = write_shards(items, str(tmp_path), num_shards=2, fps=15, resize=(24, 32),
                       num_workers=2, show_progress=False)
    for a, b in zip(report["shards"], par["shards"]):
        assert open(a, "rb").read() == open(b, "rb").read()
    # Losing one index (an interrupted shard) rewrites only that shard.
    os.remove(index_path(par["shards"][1]))
    third = write_shards(items, str(tmp_path), num_shards=2, fps=15, resize=(24, 32),
                         show_progress=False)
    assert third["resumed_shards"] == [par["shards"][0]]
    assert third["written_shards"] == [par["shards"][1]]
