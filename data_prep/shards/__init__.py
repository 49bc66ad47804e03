"""TFRecord clip shards: framing (masked CRC32C), SequenceExample records, index files,
and the parallel resumable writer. No TensorFlow needed."""
from data_prep.shards.index import build_index_by_scanning, index_path, load_or_build_index
from data_prep.shards.records import VideoRecord, encode_video_record, parse_video_record
from data_prep.shards.tfrecord import (
    TFRecordCorruptError,
    TFRecordWriter,
    frame_record,
    masked_crc32c,
    scan_tfrecord,
)
from data_prep.shards.writer import encode_video_file, shard_name, write_shards

__all__ = [
    "TFRecordCorruptError",
    "TFRecordWriter",
    "VideoRecord",
    "build_index_by_scanning",
    "encode_video_file",
    "encode_video_record",
    "frame_record",
    "index_path",
    "load_or_build_index",
    "masked_crc32c",
    "parse_video_record",
    "scan_tfrecord",
    "shard_name",
    "write_shards",
]
