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
   "inputs": {"videos": [[path, size, mtime]], "labels_sha256": str} (writer.shard_inputs),
   "skipped": [{"video_path", "video_id", "error"}],
   "warnings": [{"video_path", "video_id", "warning"}] (truncated / shorter than one clip),
   "records": [{"offset", "length", "video_id", "num_frames", "fps", "duration",
                "height", "width", "labels": labels_to_json(...)}]}
"""
from __future__ import annotations

from data_prep.infra import paths
from data_prep.infra.atomic_files import atomic_write_json, read_json
from data_prep.shards.records import labels_to_json, parse_video_record
from data_prep.shards.tfrecord import FOOTER_BYTES, HEADER_BYTES, file_size, scan_tfrecord

FORMAT = "dvc-clip-shard-index/1"
INDEX_SUFFIX = ".index.json"


def index_path(shard_path: str) -> str:
    return str(shard_path) + INDEX_SUFFIX


def write_index(shard_path: str, index: dict) -> None:
    """Writes the index of `shard_path` atomically (compact JSON: it lists every record)."""
    atomic_write_json(index_path(shard_path), index, indent=None, separators=(",", ":"))


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
    index = read_json(path)
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        found = index.get("format") if isinstance(index, dict) else type(index).__name__
        raise ValueError(f"{path}: unknown index format {found!r}, want {FORMAT}")
    size = file_size(shard_path)
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
        "shard": paths.as_path(shard_path).name,
        "tfrecord_bytes": file_size(shard_path),
        "settings": {},
        "source_videos": [],
        "skipped": [],
        "records": records,
    }


def load_or_build_index(shard_path: str) -> dict:
    """The shard's index file if present, else an index built by scanning the shard."""
    if paths.exists(index_path(shard_path)):
        return read_index(shard_path)
    return build_index_by_scanning(shard_path)
