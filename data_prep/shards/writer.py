"""Parallel, resumable writer of TFRecord clip shards (one SequenceExample per video).

Videos are assigned round-robin to `num_shards` shards (video i -> shard i % num_shards, in
the given order). Shards are produced one after another; inside a shard, videos are decoded
and JPEG-encoded in `num_workers` worker processes (spawned, so a parent that already
initialised JAX or threads is safe) while the parent writes records in order. Each shard is
written through `paths.local_output` (a local temporary file, fsynced, then renamed into
place or uploaded as one object to `gs://...`), and then its index is written atomically: a
shard with an index whose settings and video list match is finished and is kept on resume.
Videos that cannot be decoded are skipped and listed (path, id, error) in the shard index
and in `report.json`. Input videos and `out_dir` may be local or remote.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import logging
import multiprocessing
import time
from collections.abc import Sequence

from tqdm import tqdm

from data_prep.infra import paths
from data_prep.infra.atomic_files import atomic_write_json, clean_stale_temporaries
from data_prep.labels.types import VideoLabels
from data_prep.shards.index import FORMAT, index_path, read_index, record_entry, write_index
from data_prep.shards.records import encode_video_record, parse_video_record
from data_prep.shards.tfrecord import TFRecordWriter, file_size

log = logging.getLogger(__name__)


def shard_name(prefix: str, k: int, num_shards: int) -> str:
    return f"{prefix}-{k:05d}-of-{num_shards:05d}.tfrecord"


def encode_video_file(video_path: str, labels: VideoLabels, fps: float, resize,
                      jpeg_quality: int) -> tuple[bytes | None, str | None]:
    """Decodes + JPEG-encodes one video into record bytes. Returns (record, None) or
    (None, error message) for a corrupt/unreadable video (never raises for bad input)."""
    from data_prep.video import VideoDecodeError, encode_jpeg, iter_resampled_frames

    try:
        jpegs = []
        hw = None
        gen = iter_resampled_frames(video_path, fps, resize)
        while True:
            try:
                _, image = next(gen)
            except StopIteration as stop:
                duration, _ = stop.value
                break
            hw = image.shape[:2]
            jpegs.append(encode_jpeg(image, jpeg_quality))
        if not jpegs:
            return None, f"{video_path}: no frames at {fps} fps"
        record = encode_video_record(labels.video_id, fps, duration, jpegs, hw[0], hw[1], labels)
        return record, None
    except VideoDecodeError as e:
        return None, str(e)
    except Exception as e:  # noqa: BLE001 - any failure of one video must not stop the job
        return None, f"{video_path}: {type(e).__name__}: {e}"


def _settings(fps: float, resize, jpeg_quality: int) -> dict:
    resize_json = None if resize is None else (
        int(resize) if isinstance(resize, int) else [int(v) for v in resize])
    return {"fps": float(fps), "resize": resize_json, "jpeg_quality": int(jpeg_quality)}


def _shard_is_finished(path: str, expected_videos: list[str], settings: dict) -> bool:
    if not (paths.exists(path) and paths.exists(index_path(path))):
        return False
    try:
        index = read_index(path)
    except (OSError, ValueError) as e:
        log.warning("rewriting shard %s: %s", path, e)
        return False
    return index.get("source_videos") == expected_videos and index.get("settings") == settings


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
    Returns:
      The report (also written to `out_dir/{report_name}`): shard paths, counts, the skipped
      videos with their errors, which shards were resumed, seconds taken.
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
    settings = _settings(fps, resize, jpeg_quality)
    assigned = [list(videos[k::num_shards]) for k in range(num_shards)]
    shards = [paths.join(out_dir, shard_name(prefix, k, num_shards)) for k in range(num_shards)]

    t0 = time.time()
    todo, resumed = [], []
    for k in range(num_shards):
        expected = [str(p) for p, _ in assigned[k]]
        (resumed if _shard_is_finished(shards[k], expected, settings) else todo).append(k)
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
            _write_one_shard(shards[k], assigned[k], settings, fps, resize, jpeg_quality,
                             executor, num_workers, bar)
    finally:
        bar.close()
        if executor is not None:
            executor.shutdown(cancel_futures=True)

    skipped, num_written = [], 0
    for k in range(num_shards):
        index = read_index(shards[k])
        skipped.extend(index["skipped"])
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
        "shards": shards,
        "resumed_shards": [shards[k] for k in resumed],
        "written_shards": [shards[k] for k in todo],
        "seconds": round(time.time() - t0, 3),
    }
    atomic_write_json(paths.join(out_dir, report_name), report)
    for s in skipped:
        log.warning("skipped video %s (%s): %s", s["video_id"], s["video_path"], s["error"])
    log.info("wrote %d/%d videos into %d shards (%d resumed) in %.1f s; %d skipped",
             num_written, len(videos), num_shards, len(resumed), report["seconds"], len(skipped))
    return report


def _write_one_shard(path, items, settings, fps, resize, jpeg_quality, executor, num_workers,
                     bar) -> None:
    """Writes one shard (through a local temporary file) and then its index."""
    entries, skipped = [], []

    def results():
        if executor is None:
            for video_path, labels in items:
                yield video_path, labels, encode_video_file(
                    video_path, labels, fps, resize, jpeg_quality)
            return
        # Bounded window of in-flight videos keeps memory flat and output in order.
        window = collections.deque()
        it = iter(items)
        for video_path, labels in it:
            window.append((video_path, labels, executor.submit(
                encode_video_file, video_path, labels, fps, resize, jpeg_quality)))
            if len(window) >= 2 * num_workers:
                break
        while window:
            video_path, labels, fut = window.popleft()
            nxt = next(it, None)
            if nxt is not None:
                window.append((nxt[0], nxt[1], executor.submit(
                    encode_video_file, nxt[0], nxt[1], fps, resize, jpeg_quality)))
            yield video_path, labels, fut.result()

    with paths.local_output(path) as tmp, TFRecordWriter(tmp) as writer:
        for video_path, labels, (record, error) in results():
            if record is None:
                skipped.append({"video_path": str(video_path), "video_id": labels.video_id,
                                "error": error})
            else:
                offset = writer.write(record)
                parsed = parse_video_record(record, where=str(video_path))
                entries.append(record_entry(offset, writer.lengths[-1], parsed))
            bar.update(1)
    write_index(path, {
        "format": FORMAT,
        "shard": paths.as_path(path).name,
        "tfrecord_bytes": file_size(path),
        "settings": settings,
        "source_videos": [str(p) for p, _ in items],
        "skipped": skipped,
        "records": entries,
    })
