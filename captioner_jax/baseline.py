"""Stage "caption_baseline": the most frequent training caption on every GT segment.

The floor a captioner must clear with GT proposals: it knows the segments but not what
happens in them. Scored by the official evaluator like any submission.

    python launch.py --config configs/caption_baseline.py:root=data/synthetic --workdir DIR
"""
from __future__ import annotations

import collections

from captioner_jax.evaluation import evaluate_submission
from data_prep.infra import distributed, paths
from data_prep.infra.atomic_files import atomic_write_json, read_json


def most_frequent_caption(train_captions: dict) -> str:
    """The most frequent (stripped) sentence of an ActivityNet Captions mapping."""
    counts = collections.Counter(
        s.strip() for video in train_captions.values() for s in video["sentences"])
    if not counts:
        raise ValueError("no training sentences to count")
    return counts.most_common(1)[0][0]


def baseline_submission(caption: str, split: dict) -> dict:
    """`caption` on every GT segment of `split`, in the official submission format."""
    results = {vid: [{"sentence": caption, "timestamp": list(ts)} for ts in v["timestamps"]]
               for vid, v in split.items()}
    return {"version": "VERSION 1.0", "results": results,
            "external_data": {"used": False, "details": "most frequent training caption"}}


def run(config, workdir: str) -> dict:
    """Stage entry point: writes baseline_submission.json and baseline_metrics.json (process
    0 computes and writes; the other processes of a multi-host launch get its metrics)."""
    metrics = None
    if distributed.is_main_process():
        caption = most_frequent_caption(read_json(config.train_captions))
        submission = baseline_submission(caption, read_json(config.split_captions))
        atomic_write_json(paths.join(workdir, "baseline_submission.json"), submission)
        metrics = evaluate_submission(submission, list(config.references),
                                      version=str(config.version))
        metrics["caption"] = caption
        atomic_write_json(paths.join(workdir, "baseline_metrics.json"), metrics)
    return distributed.allgather_objects(metrics)[0]
