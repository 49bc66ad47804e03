"""The per-shard index file: byte offsets of records plus a small per-video summary.

`<shard>.tfrecord.index.json` lies beside each shard. Readers need it for random access
(record i = `length` bytes at `offset`) and to build clip tables (TSP segments, frame
counts) without reading any frames. It is written last and atomically, so its presence marks
a finished shard (the resumable writer keeps such shards). For a TFRecord file without an
index (e.g. written by TensorFlow) `build_index_by_scanning` recreates it in memory.

JSON layout:
  {"format": FORMAT, "shard": file name, "tfrecord_bytes": int,
   "settings": {...writer settings...},
   "source_videos": [video paths assigned to this shard, in order],
   "skipped": [{"video_path", "video_id", "error"}],
   "records": [{"offset", "length", "video_id", "num_frames", "fps", "duration",
                "height", "width", "labels": labels_to_json(...)}]}
"""
from __future__ import annotations

import json
import os

from data_prep.shards.records import labels_to_json, parse_video_record
from data_prep.shards.tfrecord import FOOTER_BYTES, HEADER_BYTES, scan_tfrecord

FORMAT = "dvc-clip-shard-index/1"
INDEX_SUFFIX = ".index.json"


def index_path(shard_path: str) -> str:
    return str(shard_path) + INDEX_SUFFIX


def write_json_atomic(path: str, obj) -> None:
    """Writes JSON to `path` via a temporary file and os.replace (never a half-written file)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def record_entry(offset: int, length: int, record) -> dict:
    """Index entry of one parsed VideoRecord framed at (offset, length)."""
    return {
        "offset": int(offset),
        "length": int(length),
        "video_id": record.video_id,
        "num_frames": record.num_frames,
        "fps": float(record.fps),
        "duration": float(record.duration),
        "height": int(record.height),
        "width": int(record.width),
        "labels": labels_to_json(record.labels),
    }


def read_index(shard_path: str) -> dict:
    """Reads and validates the index of `shard_path`; raises ValueError naming the file."""
    path = index_path(shard_path)
    with open(path) as f:
        try:
            index = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from e
    if index.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown index format {index.get('format')!r}, want {FORMAT}")
    size = os.path.getsize(shard_path)
    if index.get("tfrecord_bytes") != size:
        raise ValueError(
            f"{path}: index describes {index.get('tfrecord_bytes')} bytes but "
            f"{shard_path} has {size} (stale index?)"
        )
    for i, rec in enumerate(index["records"]):
        for key in ("offset", "length", "video_id", "num_frames", "fps", "labels"):
            if key not in rec:
                raise ValueError(f"{path}: record {i} lacks field {key!r}")
        if rec["offset"] + rec["length"] > size:
            raise ValueError(f"{path}: record {i} ({rec['video_id']}) runs past end of file")
    return index


def build_index_by_scanning(shard_path: str) -> dict:
    """Builds the index of a TFRecord file of video records by reading it once (CRC checked)."""
    records = []
    for offset, data in scan_tfrecord(shard_path):
        rec = parse_video_record(data, where=f"{shard_path} @ byte {offset}")
        records.append(record_entry(offset, HEADER_BYTES + len(data) + FOOTER_BYTES, rec))
    return {
        "format": FORMAT,
        "shard": os.path.basename(shard_path),
        "tfrecord_bytes": os.path.getsize(shard_path),
        "settings": {},
        "source_videos": [],
        "skipped": [],
        "records": records,
    }


def load_or_build_index(shard_path: str) -> dict:
    """The shard's index file if present, else an index built by scanning the shard."""
    if os.path.exists(index_path(shard_path)):
        return read_index(shard_path)
    return build_index_by_scanning(shard_path)
