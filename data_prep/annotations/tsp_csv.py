"""TSP's ground-truth and metadata CSVs and label-mapping JSONs (HumamAlwassel/TSP data/).

Ground truth, one row per action instance and per background gap:
  `video-name,t-start,t-end,action-label,video-duration,filename,fps,video-frames,
  temporal-region-label`; `video-name` has no `v_` prefix, `filename` is `v_<name>.mp4`,
  `action-label` is the class name (empty for "No action" rows).
Metadata, one row per video: `filename,video-duration,fps,video-frames`.
Label mappings: JSON lists (index = label id), e.g. `["Action", "No action"]`.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import os

from data_prep.annotations.errors import AnnotationError, as_float, read_json_file
from data_prep.infra import paths
from data_prep.infra.atomic_files import atomic_write_json, atomic_write_text
from data_prep.infra.videos import activitynet_id, youtube_id

GROUNDTRUTH_COLUMNS = ("video-name", "t-start", "t-end", "action-label", "video-duration",
                       "filename", "fps", "video-frames", "temporal-region-label")
METADATA_COLUMNS = ("filename", "video-duration", "fps", "video-frames")
REGION_LABELS = ("Action", "No action")


def caption_video_id(tsp_video_name: str) -> str:
    """TSP `video-name` (the YouTube id) -> ActivityNet Captions id: `v_` added, always
    (`v_28qqbBvu6` -> `v_v_28qqbBvu6`; the rule is `data_prep.infra.videos`)."""
    return activitynet_id(tsp_video_name)


def tsp_video_name(caption_id: str) -> str:
    """ActivityNet Captions id -> TSP `video-name`: one leading `v_` removed."""
    return youtube_id(caption_id)


@dataclasses.dataclass(frozen=True)
class TspSegment:
    """One ground-truth row: an action instance or a background gap. Times in seconds."""

    video_name: str
    t_start: float
    t_end: float
    action_label: str  # "" for background
    video_duration: float
    filename: str
    fps: float
    video_frames: int
    region_label: str  # "Action" or "No action"


@dataclasses.dataclass(frozen=True)
class VideoMetadata:
    """One metadata row: `filename` (e.g. `v_x.mp4`), duration [s], fps, number of frames."""

    filename: str
    video_duration: float
    fps: float
    video_frames: int

    @property
    def video_id(self) -> str:
        """The file name without its extension (TSP names files by ActivityNet id)."""
        return os.path.splitext(self.filename)[0]


def _read_rows(path: str, columns: tuple[str, ...]) -> list[tuple[int, dict]]:
    try:
        # Bytes decoded here, newlines untouched: what csv wants (`newline=""`).
        text = paths.read_bytes(path).decode("utf-8")
    except UnicodeDecodeError as e:
        raise AnnotationError(path, None, None, f"not UTF-8 text: {e}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = tuple(reader.fieldnames or ())
    missing = [c for c in columns if c not in header]
    if missing:
        raise AnnotationError(path, None, ",".join(missing),
                              f"missing column(s); header is {list(header)}")
    return [(i + 2, row) for i, row in enumerate(reader)]  # line numbers, 1-based


def _as_int(value, path, video, field) -> int:
    x = as_float(value, path, video, field)
    if x != int(x) or x < 0:
        raise AnnotationError(path, video, field, f"expected a count, got {value!r}")
    return int(x)


def read_tsp_groundtruth(path: str | os.PathLike) -> list[TspSegment]:
    """Reads and validates a `*_tsp_groundtruth.csv` (rows in file order)."""
    path = str(path)
    out = []
    for line, row in _read_rows(path, GROUNDTRUTH_COLUMNS):
        video = row["video-name"] or f"<line {line}>"
        if not row["video-name"]:
            raise AnnotationError(path, video, "video-name", "empty")
        seg = TspSegment(
            video_name=row["video-name"],
            t_start=as_float(row["t-start"], path, video, "t-start"),
            t_end=as_float(row["t-end"], path, video, "t-end"),
            action_label=row["action-label"] or "",
            video_duration=as_float(row["video-duration"], path, video, "video-duration"),
            filename=row["filename"],
            fps=as_float(row["fps"], path, video, "fps"),
            video_frames=_as_int(row["video-frames"], path, video, "video-frames"),
            region_label=row["temporal-region-label"],
        )
        if seg.region_label not in REGION_LABELS:
            raise AnnotationError(path, video, "temporal-region-label",
                                  f"line {line}: expected one of {REGION_LABELS}, "
                                  f"got {seg.region_label!r}")
        if seg.region_label == "Action" and not seg.action_label:
            raise AnnotationError(path, video, "action-label",
                                  f"line {line}: empty for an Action row")
        if seg.t_end < seg.t_start:
            raise AnnotationError(path, video, "t-end",
                                  f"line {line}: end {seg.t_end} < start {seg.t_start}")
        out.append(seg)
    return out


def group_by_video(rows: list[TspSegment]) -> dict[str, list[TspSegment]]:
    """Rows grouped by `video_name` (first-appearance order), each list sorted by start."""
    out: dict[str, list[TspSegment]] = {}
    for r in rows:
        out.setdefault(r.video_name, []).append(r)
    return {k: sorted(v, key=lambda r: (r.t_start, r.t_end)) for k, v in out.items()}


def read_tsp_metadata(path: str | os.PathLike) -> dict[str, VideoMetadata]:
    """Reads a `*_metadata.csv`; keyed by the video id (the filename without extension)."""
    path = str(path)
    out = {}
    for line, row in _read_rows(path, METADATA_COLUMNS):
        if not row["filename"]:
            raise AnnotationError(path, f"<line {line}>", "filename", "empty")
        video = row["filename"]
        meta = VideoMetadata(
            filename=video,
            video_duration=as_float(row["video-duration"], path, video, "video-duration"),
            fps=as_float(row["fps"], path, video, "fps"),
            video_frames=_as_int(row["video-frames"], path, video, "video-frames"),
        )
        out[meta.video_id] = meta
    return out


def read_label_mapping(path: str | os.PathLike) -> list[str]:
    """A label-mapping JSON list (index = label id)."""
    path = str(path)
    labels = read_json_file(path)
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise AnnotationError(path, None, None, "expected a JSON list of class names")
    if len(set(labels)) != len(labels):
        raise AnnotationError(path, None, None, "duplicate class names")
    return labels


def _csv_text(columns, rows) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buf.getvalue()


def write_tsp_groundtruth(path: str | os.PathLike, rows: list[TspSegment]) -> None:
    """Writes a ground-truth CSV atomically (floats as Python reprs, like TSP's files)."""
    atomic_write_text(path, _csv_text(GROUNDTRUTH_COLUMNS, [
        (r.video_name, repr(float(r.t_start)), repr(float(r.t_end)), r.action_label,
         repr(float(r.video_duration)), r.filename, repr(float(r.fps)), r.video_frames,
         r.region_label) for r in rows]))


def write_tsp_metadata(path: str | os.PathLike, rows: list[VideoMetadata]) -> None:
    """Writes a metadata CSV atomically (duration with 15 significant digits, as TSP's)."""
    atomic_write_text(path, _csv_text(METADATA_COLUMNS, [
        (r.filename, f"{r.video_duration:.15g}", f"{r.fps:g}", r.video_frames) for r in rows]))


def write_label_mapping(path: str | os.PathLike, labels: list[str]) -> None:
    """Writes a label-mapping JSON list atomically."""
    atomic_write_json(path, list(labels))
