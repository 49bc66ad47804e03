"""The input pipeline part: the TSP training pipeline on synthetic shards, in clips per
second of host CPU time (a core)."""
from __future__ import annotations

import os
import sys
import time

from benchmarks.accelerator.sizes import Sizes


def input_pipeline_part(sizes: Sizes, workdir: str) -> dict:
    """Clips per second of host CPU time of the TSP train pipeline, single process."""
    from absl import flags

    from data_prep.labels.video_labels import build_video_labels
    from data_prep.pipelines import ClipShardSource, TspInputConfig, tsp_train_dataset
    from data_prep.shards import write_shards
    from data_prep.synthetic.generator import DatasetOptions, generate_dataset
    from data_prep.synthetic.scene_sampler import SceneOptions

    if not flags.FLAGS.is_parsed():
        flags.FLAGS(sys.argv[:1])  # Grain reads absl flags; use the defaults
    root = os.path.join(workdir, "synthetic")
    h, w = sizes.frame_size
    generate_dataset(root, DatasetOptions(
        num_train=sizes.videos, num_val=1, seed=0,
        scene=SceneOptions(min_duration_s=sizes.video_s[0], max_duration_s=sizes.video_s[1],
                           height=h, width=w, min_event_s=min(2.0, sizes.video_s[0] / 2))))
    labels = build_video_labels(os.path.join(root, "tsp", "train_tsp_groundtruth.csv"),
                                os.path.join(root, "tsp", "action_label_mapping.json"),
                                min_segment_s=0.0)
    videos = [(os.path.join(root, "videos", f"{v}.mp4"), lab) for v, lab in sorted(labels.items())]
    report = write_shards(videos, os.path.join(workdir, "shards"), num_shards=2, fps=15.0,
                          resize=sizes.resize, num_workers=0, show_progress=False)
    source = ClipShardSource(report["shards"])
    cfg = TspInputConfig(batch_size=sizes.pipeline_batch, clip_length=sizes.clip[0], fps=15.0,
                         resize=sizes.resize, crop=sizes.crop, read_threads=1,
                         prefetch_buffer=2)
    ds = tsp_train_dataset(source, cfg, seed=0, train=True, process_index=0, process_count=1)
    it = iter(ds)
    next(it)  # warm-up: first reads
    wall0, cpu0, n = time.perf_counter(), time.process_time(), 0
    while time.perf_counter() - wall0 < sizes.pipeline_seconds or n == 0:
        n += len(next(it)["clips"])
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    if hasattr(it, "close"):
        it.close()
    return {"clip": [sizes.clip[0], sizes.crop, sizes.crop, 3], "stored_frames": list(sizes.resize),
            "clips": n, "wall_s": wall, "cpu_s": cpu, "clips_per_s": n / wall,
            "clips_per_core_s": n / max(cpu, 1e-9), "host_cores": os.cpu_count()}
