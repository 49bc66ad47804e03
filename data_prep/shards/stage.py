"""Launch stage "write_shards": videos + label tables -> TFRecord clip shards per split.

    python launch.py --config configs/data/shards_synthetic.py:root=data/synthetic \
        --workdir data/synthetic/shards

For every split in `config.splits` (e.g. train, val) the stage builds the per-video
VideoLabels with `data_prep.labels.build_video_labels` (TSP segments + captioned events +
concept ids), finds each video's file under `config.video_dir`, and writes
`{workdir}/{split}-SSSSS-of-NNNNN.tfrecord` (+ `.index.json`) with `write_shards`: the
layout the SA-TSP configs glob (`{root}/shards/train-*.tfrecord`). Videos without a file, or
that fail to decode, are skipped and listed in `{workdir}/{split}_report.json`; truncated
videos and videos shorter than one clip (`config.clip_length` frames) are listed there under
`warnings` (skipped instead with `config.strict=True`). A finished shard is kept when the
stage is re-run (resume) only if its videos, their files (size, mtime), their labels (a new
concept vocabulary changes them) and the settings are the same; otherwise it is rewritten.
"""
from __future__ import annotations

import logging

from data_prep.infra import paths
from data_prep.infra.videos import find_video_file
from data_prep.labels.types import VideoLabels
from data_prep.shards.writer import write_shards

log = logging.getLogger(__name__)


def video_path_for(video_dir: str, video_id: str) -> str:
    """`video_id`'s file in `video_dir` (data_prep.infra.videos rule), or the `.mp4` path when
    none exists, so the writer skips it and reports "file not found" naming that path."""
    return find_video_file(video_dir, video_id) or paths.join(video_dir, video_id + ".mp4")


def resize_setting(value):
    """Config value -> `write_shards` resize: None/0/"" keep, int shorter side, [H, W]."""
    if value is None or value == 0 or value == "" or value == ():
        return None
    if isinstance(value, int):
        return value
    return tuple(int(v) for v in value)


def write_split_shards(labels: dict[str, VideoLabels], video_dir: str, out_dir: str,
                       split: str, num_shards: int, fps: float, resize, *,
                       jpeg_quality: int = 90, num_workers: int = 0,
                       max_videos: int | None = None, min_frames: int = 0,
                       strict: bool = False) -> dict:
    """Writes the shards of one split (`{out_dir}/{split}-*.tfrecord`, videos in sorted id
    order); returns the report, also saved as `{out_dir}/{split}_report.json`."""
    ids = sorted(labels)[: max_videos or None]
    videos = [(video_path_for(video_dir, v), labels[v]) for v in ids]
    return write_shards(videos, out_dir, num_shards, fps, resize, jpeg_quality=jpeg_quality,
                        num_workers=num_workers, prefix=split,
                        report_name=f"{split}_report.json", min_frames=min_frames,
                        strict=strict)


def split_labels(config, split_cfg) -> dict[str, VideoLabels]:
    """VideoLabels of one split from its annotation files (`data_prep.labels`).

    Concept ids of the captions come from the concept vocabulary of the text_vocab stage
    (`config.concept_vocab`); without one, events carry no concepts.
    """
    from data_prep.labels.video_labels import build_video_labels
    from data_prep.text.concepts import ConceptVocab

    root = config.data_root

    def path(p):
        return paths.resolve(root, p) if p else p

    concept_path = path(config.get("concept_vocab", ""))
    concepts = None
    if concept_path:
        if not paths.is_file(concept_path):
            raise FileNotFoundError(
                f"concept vocabulary {concept_path} not found: run the text_vocab stage first "
                "(configs/data/text_synthetic.py) or set --config.concept_vocab=''"
            )
        concepts = ConceptVocab.load(concept_path)
    return build_video_labels(
        path(split_cfg.tsp_groundtruth),
        path(config.action_label_mapping),
        captions=[path(p) for p in split_cfg.captions],
        concepts=concepts,
        min_segment_s=float(config.clip_length) / float(config.fps),
    )


def run(config, workdir: str, labels_fn=split_labels) -> dict:
    """Writes the shards of every split of `config.splits` into `workdir`.

    `labels_fn(config, split_cfg) -> dict[video_id, VideoLabels]` (tests may pass their own).
    Returns {split: {num_videos, num_written, num_skipped, shards}}.
    """
    video_dir = paths.resolve(config.data_root, config.video_dir)
    if not paths.is_dir(video_dir):
        raise FileNotFoundError(f"write_shards: video directory {video_dir} does not exist")
    summary = {}
    for split, split_cfg in config.splits.items():
        labels = labels_fn(config, split_cfg)
        if not labels:
            raise ValueError(f"write_shards: split {split!r} has no videos with labels")
        report = write_split_shards(
            labels, video_dir, workdir, split, int(split_cfg.num_shards), float(config.fps),
            resize_setting(config.resize), jpeg_quality=int(config.jpeg_quality),
            num_workers=int(config.num_workers), max_videos=config.get("max_videos") or None,
            min_frames=int(config.get("clip_length", 0) or 0),
            strict=bool(config.get("strict", False)))
        summary[split] = {k: report[k] for k in ("num_videos", "num_written", "num_skipped",
                                                 "num_warnings")}
        summary[split]["shards"] = len(report["shards"])
        if report["num_skipped"] or report["num_warnings"]:
            log.warning("split %s: %d videos skipped, %d with warnings, see %s", split,
                        report["num_skipped"], report["num_warnings"],
                        paths.join(workdir, f"{split}_report.json"))
    return summary
