"""One video as a `tf.train.SequenceExample`: JPEG frames + the VideoLabels table.

Schema (all keys fixed; TensorFlow's `tf.io.parse_single_sequence_example` reads it too):

context:
  video_id            bytes      e.g. b"v_QOlSCBRmfWY"
  fps                 float      frame rate of the stored frames [frames/s]
  duration            float      duration of the decoded source stream [s]
  num_frames, height, width  int64   F, H, W of the stored frames
  labels/duration     float      annotated duration (VideoLabels.duration) [s]
  labels/segments     float[2S]  (start, end) pairs [s], row-major
  labels/action       int64[S]   action class, IGNORE_INDEX (-1) for background
  labels/region       int64[S]   REGION_ACTION (0) / REGION_BACKGROUND (1)
  labels/event_segments float[2E] (start, end) of captioned events [s]
feature_lists:
  frames              F x bytes[1]    one JPEG per frame, so a clip decodes only its frames
  labels/event_concepts E x int64[k_e] ragged concept ids of each event

Floats are float32 in the proto, like the VideoLabels arrays, so labels round-trip exactly.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from tensorflow_datasets.proto import tf_example_generated_pb2 as pb

from data_prep.labels.types import VideoLabels


@dataclasses.dataclass
class VideoRecord:
    """A parsed record. `frames`: list of F JPEG byte strings; other fields as in the schema."""

    video_id: str
    fps: float
    duration: float
    height: int
    width: int
    frames: list[bytes]
    labels: VideoLabels

    @property
    def num_frames(self) -> int:
        return len(self.frames)


def _bytes(f, value: bytes) -> None:
    f.bytes_list.value.append(value)


def encode_video_record(video_id: str, fps: float, duration: float, jpeg_frames: list[bytes],
                        height: int, width: int, labels: VideoLabels) -> bytes:
    """Serialises one video to SequenceExample bytes (see the module docstring)."""
    if labels.video_id != video_id:
        raise ValueError(f"labels are for video {labels.video_id!r}, not {video_id!r}")
    ex = pb.SequenceExample()
    ctx = ex.context.feature
    _bytes(ctx["video_id"], video_id.encode("utf-8"))
    ctx["fps"].float_list.value.append(float(fps))
    ctx["duration"].float_list.value.append(float(duration))
    ctx["num_frames"].int64_list.value.append(len(jpeg_frames))
    ctx["height"].int64_list.value.append(int(height))
    ctx["width"].int64_list.value.append(int(width))
    ctx["labels/duration"].float_list.value.append(float(labels.duration))
    ctx["labels/segments"].float_list.value.extend(labels.segments.reshape(-1).tolist())
    ctx["labels/action"].int64_list.value.extend(labels.action_labels.tolist())
    ctx["labels/region"].int64_list.value.extend(labels.region_labels.tolist())
    ctx["labels/event_segments"].float_list.value.extend(
        labels.event_segments.reshape(-1).tolist()
    )
    frames = ex.feature_lists.feature_list["frames"].feature
    for jpeg in jpeg_frames:
        _bytes(frames.add(), jpeg)
    concepts = ex.feature_lists.feature_list["labels/event_concepts"].feature
    for ids in labels.event_concepts:
        concepts.add().int64_list.value.extend(ids.tolist())
    # deterministic=True sorts map keys: the same video gives the same bytes in any process.
    return ex.SerializeToString(deterministic=True)


def _scalar(ctx, key: str, kind: str, where: str):
    if key not in ctx:
        raise KeyError(f"{where}: missing context feature {key!r}")
    values = getattr(ctx[key], kind).value
    if len(values) != 1:
        raise ValueError(f"{where}: context feature {key!r} has {len(values)} values, want 1")
    return values[0]


def _labels_from_context(ctx, concept_lists, video_id: str, where: str) -> VideoLabels:
    def floats(key):
        return np.asarray(ctx[key].float_list.value, np.float32) if key in ctx else np.zeros(
            0, np.float32)

    def ints(key):
        return np.asarray(ctx[key].int64_list.value, np.int64) if key in ctx else np.zeros(
            0, np.int64)

    duration = ctx["labels/duration"].float_list.value[0] if "labels/duration" in ctx else 0.0
    segments = floats("labels/segments")
    events = floats("labels/event_segments")
    if len(segments) % 2 or len(events) % 2:
        raise ValueError(f"{where}: segment lists must hold (start, end) pairs")
    try:
        return VideoLabels(
            video_id=video_id,
            duration=float(duration),
            segments=segments.reshape(-1, 2),
            action_labels=ints("labels/action"),
            region_labels=ints("labels/region"),
            event_segments=events.reshape(-1, 2),
            event_concepts=[np.asarray(f.int64_list.value, np.int32) for f in concept_lists],
        )
    except ValueError as e:
        raise ValueError(f"{where}: inconsistent label table: {e}") from e


def parse_video_record(data: bytes, where: str = "<record>") -> VideoRecord:
    """Parses SequenceExample bytes written by `encode_video_record` (or by TensorFlow with the
    same schema). `where` names the file/record in error messages."""
    ex = pb.SequenceExample()
    try:
        ex.ParseFromString(data)
    except Exception as e:  # protobuf raises DecodeError, a bare Exception subclass
        raise ValueError(f"{where}: not a SequenceExample ({e})") from e
    ctx = ex.context.feature
    video_id = _scalar(ctx, "video_id", "bytes_list", where).decode("utf-8")
    where = f"{where} (video {video_id})"
    fls = ex.feature_lists.feature_list
    frames = [f.bytes_list.value[0] for f in fls["frames"].feature] if "frames" in fls else []
    num_frames = _scalar(ctx, "num_frames", "int64_list", where)
    if num_frames != len(frames):
        raise ValueError(f"{where}: num_frames={num_frames} but {len(frames)} frames stored")
    concept_lists = fls["labels/event_concepts"].feature if "labels/event_concepts" in fls else []
    return VideoRecord(
        video_id=video_id,
        fps=float(_scalar(ctx, "fps", "float_list", where)),
        duration=float(_scalar(ctx, "duration", "float_list", where)),
        height=int(_scalar(ctx, "height", "int64_list", where)),
        width=int(_scalar(ctx, "width", "int64_list", where)),
        frames=frames,
        labels=_labels_from_context(ctx, concept_lists, video_id, where),
    )


def labels_to_json(labels: VideoLabels) -> dict:
    """VideoLabels -> JSON-able dict (float32 values round-trip exactly through JSON)."""
    return {
        "video_id": labels.video_id,
        "duration": float(labels.duration),
        "segments": labels.segments.tolist(),
        "action_labels": labels.action_labels.tolist(),
        "region_labels": labels.region_labels.tolist(),
        "event_segments": labels.event_segments.tolist(),
        "event_concepts": [c.tolist() for c in labels.event_concepts],
    }


def labels_from_json(d: dict) -> VideoLabels:
    """Inverse of `labels_to_json`."""
    return VideoLabels(
        video_id=d["video_id"],
        duration=float(d["duration"]),
        segments=np.asarray(d["segments"], np.float32).reshape(-1, 2),
        action_labels=d["action_labels"],
        region_labels=d["region_labels"],
        event_segments=np.asarray(d["event_segments"], np.float32).reshape(-1, 2),
        event_concepts=d["event_concepts"],
    )
