"""Parallel, resumable writer of TFRecord clip shards (one SequenceExample per video).

Videos are assigned round-robin to `num_shards` shards (video i -> shard i % num_shards, in
the given order). Shards are produced one after another; inside a shard, videos are decoded
and JPEG-encoded in `num_workers` worker processes (spawned, so a parent that already
initialised JAX or threads is safe) while the parent writes records in order. Each shard is
written through `paths.local_output` (a local temporary file, fsynced, then renamed into
place or uploaded as one object to `gs://...`), and then its index is written atomically.

Resume: a shard is finished and kept when its index records the same settings (frame rate,
size, JPEG quality, strictness, WRITER_VERSION), the same video list, and the same inputs:
the size and modification time of every video file and a hash of every video's labels
(annotations, concept ids: a new concept vocabulary changes them). Otherwise the shard is
written again, and the log says what changed; old labels or frames are never kept.

Bad input: videos that cannot be decoded are skipped and listed (path, id, error) in the
shard index and in `report.json`. Videos whose decoded length falls short of the length
their container states (`data_prep.video.truncation_problem`: cut files) and videos with
fewer frames than `min_frames` (shorter than one clip) are written but listed under
`warnings` (path, id, warning) in the index and the report; with `strict=True` they are
skipped instead. Input videos and `out_dir` may be local or remote.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import hashlib
import json
import logging
import multiprocessing
import time
from collections.abc import Sequence

from tqdm import tqdm

from data_prep.infra import paths
from data_prep.infra.atomic_files import atomic_write_json, clean_stale_temporaries
from data_prep.labels.types import VideoLabels
from data_prep.shards.index import FORMAT, index_path, read_index, record_entry, write_index
from data_prep.shards.records import encode_video_record, labels_to_json, parse_video_record
from data_prep.shards.tfrecord import TFRecordWriter, file_size

log = logging.getLogger(__name__)

# Bump when what a shard holds for the same inputs and settings changes (record layout, frame
# selection, which videos are kept): shards of another version are written again.
WRITER_VERSION = 2


def shard_name(prefix: str, k: int, num_shards: int) -> str:
    return f"{prefix}-{k:05d}-of-{num_shards:05d}.tfrecord"


def encode_video_file(video_path: str, labels: VideoLabels, fps: float, resize,
                      jpeg_quality: int, min_frames: int = 0, strict: bool = False
                      ) -> tuple[bytes | None, str | None, list[str]]:
    """Decodes + JPEG-encodes one video into record bytes.

    Returns (record, None, warnings), or (None, error message, []) for a corrupt/unreadable
    video (never raises for bad input). Warnings: a truncated file, fewer than `min_frames`
    frames (module docstring); under `strict` these are errors instead.
    """
    from data_prep.video import (
        VideoDecodeError,
        encode_jpeg,
        iter_resampled_frames,
        truncation_problem,
    )

    try:
        jpegs = []
        hw = None
        gen = iter_resampled_frames(video_path, fps, resize)
        while True:
            try:
                _, image = next(gen)
            except StopIteration as stop:
                duration, _, declared = stop.value
                break
            hw = image.shape[:2]
            jpegs.append(encode_jpeg(image, jpeg_quality))
        if not jpegs:
            return None, f"{video_path}: no frames at {fps} fps", []
        warnings = []
        truncated = truncation_problem(str(video_path), duration, declared)
        if truncated:
            warnings.append(truncated)
        if len(jpegs) < min_frames:
            warnings.append(f"{video_path}: shorter than one clip ({len(jpegs)} frames at "
                            f"{fps:g} fps < {min_frames}; {duration:.2f} s)")
        if strict and warnings:
            return None, "; ".join(warnings) + " (strict)", []
        record = encode_video_record(labels.video_id, fps, duration, jpegs, hw[0], hw[1], labels)
        return record, None, warnings
    except VideoDecodeError as e:
        return None, str(e), []
    except Exception as e:  # noqa: BLE001 - any failure of one video must not stop the job
        return None, f"{video_path}: {type(e).__name__}: {e}", []


def _settings(fps: float, resize, jpeg_quality: int, min_frames: int = 0,
              strict: bool = False) -> dict:
    resize_json = None if resize is None else (
        int(resize) if isinstance(resize, int) else [int(v) for v in resize])
    return {"fps": float(fps), "resize": resize_json, "jpeg_quality": int(jpeg_quality),
            "min_frames": int(min_frames), "strict": bool(strict),
            "writer_version": WRITER_VERSION}


def shard_inputs(items) -> dict:
    """What a shard's contents depend on besides the settings: per video file its size and
    modification time (None when missing), and one sha256 over every video's labels."""
    videos = []
    for video_path, _ in items:
        try:
            sig = paths.stat_signature(video_path)
            videos.append([str(video_path), sig["size"], sig["mtime"]])
        except (FileNotFoundError, OSError):
            videos.append([str(video_path), None, None])
    digest = hashlib.sha256()
    for _, labels in items:
        digest.update(json.dumps(labels_to_json(labels), sort_keys=True).encode())
        digest.update(b"\n")
    return {"videos": videos, "labels_sha256": digest.hexdigest()}


def _why_unfinished(path: str, expected_videos: list[str], settings: dict, inputs: dict
                    ) -> str | None:
    """None when the shard at `path` is finished with these videos, settings and inputs;
    otherwise what differs (for the log)."""
    if not (paths.exists(path) and paths.exists(index_path(path))):
        return "not written yet"
    try:
        index = read_index(path)
    except (OSError, ValueError) as e:
        return f"unreadable index ({e})"
    if index.get("source_videos") != expected_videos:
        return "another list of videos"
    if index.get("settings") != settings:
        old = index.get("settings") or {}
        keys = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        return "settings changed: " + ", ".join(
            f"{k} {old.get(k)!r} -> {settings.get(k)!r}" for k in keys)
    old = index.get("inputs") or {}
    changed = [new[0] for prev, new in zip(old.get("videos", []), inputs["videos"])
               if prev != new]
    if changed:
        return (f"{len(changed)} video file(s) changed (size or modification time), e.g. "
                f"{changed[0]}")
    if old.get("labels_sha256") != inputs["labels_sha256"]:
        return "the labels changed (annotation files or concept vocabulary)"
    return None


def write_shards(
    videos: Sequence[tuple[str, VideoLabels]],
    out_dir: str,
    num_shards: int,
    fps: float = 15.0,
    resize=(128, 171),
    *,
    jpeg_quality: int = 90,
    num_workers: int = 0,
    prefix: str = "clips",
    report_name: str = "report.json",
    show_progress: bool = True,
    min_frames: int = 0,
    strict: bool = False,
) -> dict:
    """Writes `videos` into `num_shards` TFRecord shards with index files under `out_dir`.

    Args:
      videos: (video file path, VideoLabels) pairs; video ids must be unique.
      out_dir: output directory (created).
      num_shards: number of shards (>= 1; shards with no videos are still written, empty).
      fps: stored frame rate [frames/s] (TSP: 15).
      resize: None, shorter side (int) or fixed (height, width) (TSP: (128, 171)).
      jpeg_quality: JPEG quality of stored frames (1-95).
      num_workers: decode processes; 0 decodes in this process.
      prefix: shard file name prefix (`{prefix}-00000-of-00004.tfrecord`).
      report_name: file name of the report in `out_dir`.
      min_frames: videos with fewer stored frames are reported as shorter than one clip
        (give the clip length [frames]; 0: no check).
      strict: skip (instead of report) truncated videos and videos shorter than one clip.
    Returns:
      The report (also written to `out_dir/{report_name}`): shard paths, counts, the skipped
      videos with their errors, the warnings (truncated / shorter than one clip), which
      shards were resumed, seconds taken.
    """
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    ids = collections.Counter(lab.video_id for _, lab in videos)
    dups = [v for v, n in ids.items() if n > 1]
    if dups:
        raise ValueError(f"duplicate video ids: {dups[:5]}")
    paths.make_dirs(out_dir)
    for stale in clean_stale_temporaries(out_dir):  # of a killed run (local folders only)
        log.info("removed the temporary file %s of an interrupted run", stale)
    settings = _settings(fps, resize, jpeg_quality, min_frames, strict)
    assigned = [list(videos[k::num_shards]) for k in range(num_shards)]
    shards = [paths.join(out_dir, shard_name(prefix, k, num_shards)) for k in range(num_shards)]

    t0 = time.time()
    todo, resumed, inputs = [], [], []
    for k in range(num_shards):
        expected = [str(p) for p, _ in assigned[k]]
        inputs.append(shard_inputs(assigned[k]))
        why = _why_unfinished(shards[k], expected, settings, inputs[k])
        if why is None:
            resumed.append(k)
            continue
        if why != "not written yet":
            log.warning("writing shard %s again: %s", shards[k], why)
        todo.append(k)
    done_videos = sum(len(assigned[k]) for k in resumed)
    bar = tqdm(total=len(videos), initial=done_videos, desc="write_shards", unit="video",
               disable=not show_progress)
    executor = None
    if num_workers > 0 and todo:
        executor = cf.ProcessPoolExecutor(
            max_workers=num_workers, mp_context=multiprocessing.get_context("spawn")
        )
    try:
        for k in todo:
            _write_one_shard(shards[k], assigned[k], settings, inputs[k], executor,
                             num_workers, bar)
    finally:
        bar.close()
        if executor is not None:
            executor.shutdown(cancel_futures=True)

    skipped, warnings, num_written = [], [], 0
    for k in range(num_shards):
        index = read_index(shards[k])
        skipped.extend(index["skipped"])
        warnings.extend(index.get("warnings", []))
        num_written += len(index["records"])
    report = {
        "format": FORMAT,
        "prefix": prefix,
        "out_dir": paths.absolute(out_dir),
        "settings": settings,
        "num_videos": len(videos),
        "num_written": num_written,
        "num_skipped": len(skipped),
        "skipped": skipped,
        "num_warnings": len(warnings),
        "warnings": warnings,
        "shards": shards,
        "resumed_shards": [shards[k] for k in resumed],
        "written_shards": [shards[k] for k in todo],
        "seconds": round(time.time() - t0, 3),
    }
    atomic_write_json(paths.join(out_dir, report_name), report)
    for s in skipped:
        log.warning("skipped video %s (%s): %s", s["video_id"], s["video_path"], s["error"])
    for w in warnings:
        log.warning("video %s: %s", w["video_id"], w["warning"])
    log.info("wrote %d/%d videos into %d shards (%d resumed) in %.1f s; %d skipped",
             num_written, len(videos), num_shards, len(resumed), report["seconds"], len(skipped))
    return report


def _write_one_shard(path, items, settings, inputs, executor, num_workers, bar) -> None:
    """Writes one shard (through a local temporary file) and then its index."""
    entries, skipped, warnings = [], [], []
    args = (settings["fps"], settings["resize"], settings["jpeg_quality"],
            settings["min_frames"], settings["strict"])

    def results():
        if executor is None:
            for video_path, labels in items:
                yield video_path, labels, encode_video_file(video_path, labels, *args)
            return
        # Bounded window of in-flight videos keeps memory flat and output in order.
        window = collections.deque()
        it = iter(items)
        for video_path, labels in it:
            window.append((video_path, labels, executor.submit(
                encode_video_file, video_path, labels, *args)))
            if len(window) >= 2 * num_workers:
                break
        while window:
            video_path, labels, fut = window.popleft()
            nxt = next(it, None)
            if nxt is not None:
                window.append((nxt[0], nxt[1], executor.submit(
                    encode_video_file, nxt[0], nxt[1], *args)))
            yield video_path, labels, fut.result()

    with paths.local_output(path) as tmp, TFRecordWriter(tmp) as writer:
        for video_path, labels, (record, error, notes) in results():
            if record is None:
                skipped.append({"video_path": str(video_path), "video_id": labels.video_id,
                                "error": error})
            else:
                offset = writer.write(record)
                parsed = parse_video_record(record, where=str(video_path))
                entries.append(record_entry(offset, writer.lengths[-1], parsed))
                warnings += [{"video_path": str(video_path), "video_id": labels.video_id,
                              "warning": note} for note in notes]
            bar.update(1)
    write_index(path, {
        "format": FORMAT,
        "shard": paths.as_path(path).name,
        "tfrecord_bytes": file_size(path),
        "settings": settings,
        "source_videos": [str(p) for p, _ in items],
        "inputs": inputs,
        "skipped": skipped,
        "warnings": warnings,
        "records": entries,
    })
