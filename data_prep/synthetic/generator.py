"""Generates the synthetic dense-captioning data set in the real on-disk formats.

Layout under `out_dir`:
  videos/<video_id>.mp4                     H.264 (yuv420p), PyAV/libx264
  captions/{train,val_1,val_2}.json         ActivityNet Captions; val_2 = an independently
                                            sampled second caption set of the val videos
  tsp/{train,valid}_tsp_groundtruth.csv     TSP ground truth (actions + background gaps)
  tsp/{train,valid}_metadata.csv            TSP metadata
  tsp/action_label_mapping.json             action class names (index = label id)
  tsp/temporal_region_label_mapping.json    ["Action", "No action"]
  synthetic_events.json                     every event's attributes (for tests and analysis)

Deterministic: video `i` depends only on (seed, i) (see `scene_sampler.video_rng`), so the
same seed gives the same JSON/CSV bytes whatever the number of workers. The mp4 bytes are
deterministic too with one encoder thread per video (the default).

`out_dir` may be local or remote (`gs://...`): every file goes through the path layer; PyAV
encodes each mp4 into a local temporary file (`paths.local_output`) that lands atomically.
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import fractions
import json
import logging
import multiprocessing
import os
import time

import numpy as np

from data_prep.annotations.activitynet_captions import VideoCaptions, write_captions
from data_prep.annotations.tsp_csv import (
    REGION_LABELS,
    TspSegment,
    VideoMetadata,
    tsp_video_name,
    write_label_mapping,
    write_tsp_groundtruth,
    write_tsp_metadata,
)
from data_prep.infra import paths
from data_prep.infra.atomic_files import atomic_write_json, clean_stale_temporaries
from data_prep.synthetic.attributes import ACTION_DISPLAY_NAMES, ACTIONS, VideoSpec
from data_prep.synthetic.caption_grammar import describe_video
from data_prep.synthetic.renderer import render_frames
from data_prep.synthetic.scene_sampler import SceneOptions, sample_video_spec, video_rng

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DatasetOptions:
    """What to generate.

    Attributes:
      num_train, num_val: videos per split (val videos get the val_1 and val_2 captions and
        the TSP "valid" split).
      seed: data set seed.
      scene: duration / size / fps / event ranges.
      workers: processes rendering videos in parallel (1 = in this process).
      crf, preset: libx264 quality and speed.
    """

    num_train: int = 240
    num_val: int = 60
    seed: int = 0
    scene: SceneOptions = SceneOptions()
    workers: int = 1
    crf: int = 20
    preset: str = "ultrafast"


def encode_mp4(frames: np.ndarray, path: str | os.PathLike, fps: float, crf: int = 20,
               preset: str = "ultrafast") -> None:
    """Encodes uint8 RGB frames [T, H, W, 3] to an H.264 mp4 at `path` (local or remote),
    atomically: PyAV writes a local temporary file that then lands at `path`."""
    import av  # imported here: only the rendering workers need it

    _, h, w, _ = frames.shape
    with paths.local_output(path) as tmp, av.open(tmp, mode="w") as container:
        stream = container.add_stream(
            "libx264", rate=fractions.Fraction(fps).limit_denominator(1001),
            options={"crf": str(crf), "preset": preset, "threads": "1"},
        )
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _render_and_encode(job: tuple[VideoSpec, str, int, str]) -> tuple[str, int]:
    spec, path, crf, preset = job
    encode_mp4(render_frames(spec), path, spec.fps, crf, preset)
    return spec.video_id, paths.stat_signature(path)["size"]


def tsp_rows(spec: VideoSpec) -> list[TspSegment]:
    """TSP ground truth of a video: one row per event and per background gap, by start time.

    Background gaps are the parts of [0, duration] covered by no event (as TSP's
    "No action" rows); overlapping events are separate action rows.
    """
    duration = spec.duration
    name = tsp_video_name(spec.video_id)
    common = dict(video_name=name, video_duration=duration, filename=spec.video_id + ".mp4",
                  fps=float(spec.fps), video_frames=spec.num_frames)
    rows = [TspSegment(t_start=e.start, t_end=e.end, action_label=e.action_name,
                       region_label=REGION_LABELS[0], **common) for e in spec.events]
    cursor = 0.0
    for e in sorted(spec.events, key=lambda e: e.start):
        if e.start - cursor > 1e-6:
            rows.append(TspSegment(t_start=cursor, t_end=e.start, action_label="",
                                   region_label=REGION_LABELS[1], **common))
        cursor = max(cursor, e.end)
    if duration - cursor > 1e-6:
        rows.append(TspSegment(t_start=cursor, t_end=duration, action_label="",
                               region_label=REGION_LABELS[1], **common))
    return sorted(rows, key=lambda r: (r.t_start, r.t_end))


def video_captions(spec: VideoSpec, caption_set: int, seed: int, index: int) -> VideoCaptions:
    """Caption set `caption_set` (1 or 2, independent draws) of a video's events."""
    rng = video_rng(seed, index, caption_set)
    return VideoCaptions(
        video_id=spec.video_id,
        duration=round(spec.duration, 2),
        timestamps=np.array([[e.start, e.end] for e in spec.events], np.float64).reshape(-1, 2),
        sentences=describe_video(spec.events, rng),
    )


def sample_specs(options: DatasetOptions) -> list[VideoSpec]:
    """The specs of all videos (train first, then val), with unique ids."""
    specs = [sample_video_spec(options.seed, i, options.scene)
             for i in range(options.num_train + options.num_val)]
    ids = [s.video_id for s in specs]
    if len(set(ids)) != len(ids):  # ~1e-15 for a few thousand videos; still checked
        raise RuntimeError(f"video id collision with seed {options.seed}")
    return specs


def write_annotations(out_dir: str | os.PathLike, specs: list[VideoSpec],
                      options: DatasetOptions) -> None:
    """Writes every JSON/CSV file of the data set (not the videos) under `out_dir`."""
    train = list(enumerate(specs[: options.num_train]))
    val = list(enumerate(specs[options.num_train:], start=options.num_train))
    seed = options.seed

    def out(*parts: str) -> str:
        return paths.join(out_dir, *parts)

    write_captions(out("captions", "train.json"),
                   {s.video_id: video_captions(s, 1, seed, i) for i, s in train})
    write_captions(out("captions", "val_1.json"),
                   {s.video_id: video_captions(s, 1, seed, i) for i, s in val})
    write_captions(out("captions", "val_2.json"),
                   {s.video_id: video_captions(s, 2, seed, i) for i, s in val})
    for split, items in (("train", train), ("valid", val)):
        write_tsp_groundtruth(out("tsp", f"{split}_tsp_groundtruth.csv"),
                              [r for _, s in items for r in tsp_rows(s)])
        write_tsp_metadata(out("tsp", f"{split}_metadata.csv"), [
            VideoMetadata(s.video_id + ".mp4", s.duration, float(s.fps), s.num_frames)
            for _, s in items])
    write_label_mapping(out("tsp", "action_label_mapping.json"),
                        [ACTION_DISPLAY_NAMES[a] for a in ACTIONS])
    write_label_mapping(out("tsp", "temporal_region_label_mapping.json"), list(REGION_LABELS))
    atomic_write_json(out("synthetic_events.json"), {
        "seed": seed,
        "options": json.loads(json.dumps(dataclasses.asdict(options))),
        "videos": {s.video_id: {"split": "train" if i < options.num_train else "val",
                                "num_frames": s.num_frames, "fps": s.fps,
                                "events": [e.to_json() for e in s.events]}
                   for i, s in enumerate(specs)},
    }, indent=1)


def generate_dataset(out_dir: str | os.PathLike, options: DatasetOptions,
                     skip_existing_videos: bool = False) -> dict:
    """Generates the whole data set under `out_dir`; returns a summary dict.

    Args:
      out_dir: output root (created; local or remote).
      options: what to generate.
      skip_existing_videos: keep mp4 files that already exist (resume an interrupted run;
        files are written atomically, so an existing file is complete).
    """
    from tqdm import tqdm

    out_dir = os.fspath(out_dir)
    t0 = time.time()
    specs = sample_specs(options)
    write_annotations(out_dir, specs, options)
    video_dir = paths.join(out_dir, "videos")
    paths.make_dirs(video_dir)
    for stale in clean_stale_temporaries(video_dir):  # of a killed run (local folders only)
        log.info("removed the temporary file %s of an interrupted run", stale)
    jobs = []
    for s in specs:
        # The file is named by the ActivityNet id, as TSP's `filename` column says.
        path = paths.join(video_dir, f"{s.video_id}.mp4")
        if not (skip_existing_videos and paths.exists(path)):
            jobs.append((s, path, options.crf, options.preset))
    total_bytes = 0
    bar = tqdm(total=len(jobs), desc="render videos", unit="video", mininterval=2.0,
               disable=len(jobs) < 20)
    if options.workers <= 1 or len(jobs) < 4:
        for job in jobs:
            total_bytes += _render_and_encode(job)[1]
            bar.update()
    else:
        # spawn, not fork: the parent may have imported JAX (threads) already.
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(options.workers, mp_context=ctx) as pool:
            for _, size in pool.map(_render_and_encode, jobs, chunksize=4):
                total_bytes += size
                bar.update()
    bar.close()
    seconds = time.time() - t0
    summary = {
        "out_dir": out_dir,
        "videos": len(specs),
        "rendered": len(jobs),
        "events": sum(len(s.events) for s in specs),
        "video_seconds": round(sum(s.duration for s in specs), 1),
        "mp4_megabytes": round(total_bytes / 2**20, 2),
        "wall_seconds": round(seconds, 2),
    }
    log.info("synthetic data set: %s", summary)
    return summary
