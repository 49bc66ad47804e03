"""Input-pipeline throughput: clips/s for shard read + JPEG decode + augment (TSP train).

    python benchmarks/input_pipeline.py [--videos 24] [--seconds 8] [--workers 0,2]
        [--workdir DIR]

Generates a small synthetic data set (data_prep.synthetic), writes clip shards at two sizes
and times the TSP training pipeline (`tsp_train_dataset`, train=True) for each:

  default     frames stored at 128x171 (TSP resize), 16-frame clips, random crop 112 + flip
  112x112x16  frames stored at 112x112, 16-frame clips, crop 112 (decode + normalise only)

each in a single process (Grain thread prefetch, `read_threads`) and with Grain worker
processes (`IterDataset.mp_prefetch(MultiprocessingOptions(num_workers=W))`, the same
pipeline split over W processes). Labels: TSP segments from the synthetic ground-truth CSV
(concepts off: they cost microseconds). Prints one line per setting; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import grain  # noqa: E402

from data_prep.labels.types import VideoLabels  # noqa: E402
from data_prep.labels.video_labels import build_video_labels  # noqa: E402
from data_prep.pipelines import ClipShardSource, TspInputConfig, tsp_train_dataset  # noqa: E402
from data_prep.shards import write_shards  # noqa: E402


def _labels_from_tsp_csv(root: str) -> dict[str, VideoLabels]:
    """VideoLabels (segments + action/region labels, no events) from the synthetic TSP CSV."""
    return build_video_labels(os.path.join(root, "tsp", "train_tsp_groundtruth.csv"),
                              os.path.join(root, "tsp", "action_label_mapping.json"),
                              min_segment_s=0.0)


def _time_pipeline(ds, batch_size: int, seconds: float) -> tuple[float, int]:
    it = iter(ds)
    next(it)  # warm-up: worker start, first reads
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        batch = next(it)
        n += len(batch["clips"])
    rate = n / (time.perf_counter() - t0)
    if hasattr(it, "close"):
        it.close()
    return rate, n


def main() -> None:
    from data_prep.infra.host_memory import keep_freed_memory, setting

    keep_freed_memory()  # as in a training process (launch.py); DVC_HOST_MALLOC=system: not
    print(f"host malloc: {setting()}")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", type=int, default=24, help="synthetic train videos")
    ap.add_argument("--seconds", type=float, default=8.0, help="timing window per setting")
    ap.add_argument("--workers", default="0,2", help="comma list; 0 = single process")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--read-threads", type=int, default=1)
    ap.add_argument("--workdir", default=None, help="reuse generated data/shards here")
    args = ap.parse_args()
    from absl import flags

    flags.FLAGS(sys.argv[:1])  # Grain's worker processes read absl flags; use the defaults
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench_input_")
    data_root = os.path.join(workdir, "synthetic")

    from data_prep.synthetic.generator import DatasetOptions, generate_dataset
    from data_prep.synthetic.scene_sampler import SceneOptions

    if not os.path.exists(os.path.join(data_root, "tsp", "train_tsp_groundtruth.csv")):
        t = time.perf_counter()
        generate_dataset(data_root, DatasetOptions(
            num_train=args.videos, num_val=1, seed=0,
            scene=SceneOptions(min_duration_s=8.0, max_duration_s=16.0, height=128, width=172)))
        print(f"generated {args.videos} videos (128x172) in {time.perf_counter() - t:.1f} s")
    labels = _labels_from_tsp_csv(data_root)
    videos = [(os.path.join(data_root, "videos", f"{v}.mp4"), lab)
              for v, lab in sorted(labels.items())]

    settings = {"default": ((128, 171), 112), "112x112x16": ((112, 112), 112)}
    results = []
    for name, (size, crop) in settings.items():
        t = time.perf_counter()
        report = write_shards(videos, os.path.join(workdir, f"shards_{name}"), num_shards=4,
                              fps=15.0, resize=size, num_workers=0, show_progress=False)
        write_s = time.perf_counter() - t
        source = ClipShardSource(report["shards"])
        frames = int(source.num_frames.sum())
        print(f"[{name}] shards: {report['num_written']} videos, {frames} frames, "
              f"{sum(os.path.getsize(p) for p in report['shards']) / 2**20:.1f} MiB, "
              + (f"resumed from {workdir}" if not report["written_shards"] else
                 f"written in {write_s:.1f} s ({frames / write_s:.0f} frames/s, 1 process)"))
        cfg = TspInputConfig(batch_size=args.batch_size, clip_length=16, fps=15.0,
                             resize=size, crop=crop, read_threads=args.read_threads,
                             prefetch_buffer=4)
        for workers in (int(w) for w in args.workers.split(",")):
            ds = tsp_train_dataset(source, cfg, seed=0, train=True, process_index=0,
                                   process_count=1)
            if workers > 0:
                ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
            rate, n = _time_pipeline(ds, args.batch_size, args.seconds)
            mode = f"{workers} worker processes" if workers else "single process"
            print(f"[{name}] 16x{crop}x{crop} clips, {mode} (read_threads="
                  f"{args.read_threads}): {rate:.1f} clips/s ({n} clips)")
            results.append({"setting": name, "workers": workers, "clips_per_s": round(rate, 2)})
    print(json.dumps({"cpu_count": os.cpu_count(), "results": results}))


if __name__ == "__main__":
    main()
