"""Diagnostic features for the synthetic data set, computed from its ground-truth attributes.

Not a video encoder: every feature step (`step_s` seconds) holds the sum, over the events
active at that time, of one-hot codes of the event's attributes (count, size, colour, shape,
action, speed), plus Gaussian noise. They let tests and quick experiments check that the
captioner *can* learn to localise and describe events without first training an encoder
(an upper-bound input; real runs use `sa_tsp_extract` features). Written as PDVC-style
`.npy` files, one [N, D] float32 array per video.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

# `python benchmarks/attribute_features.py ...` (the README's probe command) runs from the
# repository root without the project installed.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data_prep.infra import paths  # noqa: E402
from data_prep.infra.atomic_files import atomic_write_bytes  # noqa: E402

ATTRIBUTES = ("count", "size", "color", "shape", "action", "speed")


def _vocabularies(videos: dict) -> dict[str, list]:
    values = {a: set() for a in ATTRIBUTES}
    for video in videos.values():
        for event in video["events"]:
            for a in ATTRIBUTES:
                values[a].add(str(event[a]))
    return {a: sorted(v) for a, v in values.items()}


def write_attribute_features(events_json: str, out_dir: str, *, step_s: float = 0.5,
                             noise: float = 0.1, seed: int = 0) -> int:
    """Writes `<out_dir>/<video_id>.npy` for every video of `synthetic_events.json`.

    Returns the feature dimension."""
    videos = json.loads(paths.read_text(events_json))["videos"]
    vocab = _vocabularies(videos)
    offsets, dim = {}, 0
    for a in ATTRIBUTES:
        offsets[a] = dim
        dim += len(vocab[a])
    paths.make_dirs(out_dir)
    for i, (vid, video) in enumerate(sorted(videos.items())):
        duration = video["num_frames"] / video["fps"]
        steps = max(int(np.ceil(duration / step_s)), 1)
        t = (np.arange(steps) + 0.5) * step_s
        feats = np.zeros((steps, dim), np.float32)
        for event in video["events"]:
            active = (t >= event["start"]) & (t < event["end"])
            for a in ATTRIBUTES:
                feats[active, offsets[a] + vocab[a].index(str(event[a]))] += 1.0
        rng = np.random.default_rng([seed, i])
        feats += noise * rng.standard_normal(feats.shape).astype(np.float32)
        import io

        buf = io.BytesIO()
        np.save(buf, feats)
        atomic_write_bytes(paths.join(out_dir, f"{vid}.npy"), buf.getvalue())
    return dim


# ----------------------------------------------------------------------------- encoder probe
PROBED = ("action", "count", "size", "color", "shape", "speed")


def clip_features_and_attributes(encoder, shard_glob: str, videos: dict,
                                 clips_per_segment: int = 2, batch_size: int = 32,
                                 max_clips: int = 0):
    """Backbone features of evenly spaced clips of every action segment, with the attributes
    of the segment's event.

    encoder: `load_probe_encoder(params_dir)`; videos: the "videos" of synthetic_events.json.
    Clips: the validation sampling of the TSP pipeline (center crop, the export's geometry).
    Returns (features float32 [N, D], {attribute: int [N]}, {attribute: list of values}).
    """
    from data_prep.pipelines.source import ClipShardSource
    from data_prep.pipelines.tsp_pipeline import (
        SegmentClipTable,
        TspInputConfig,
        tsp_train_dataset,
    )

    fwd, variables, geometry = encoder
    values = {a: sorted({str(e[a]) for v in videos.values() for e in v["events"]})
              for a in PROBED}
    cfg = TspInputConfig(batch_size=batch_size, clip_length=geometry.clip_length,
                         fps=geometry.fps, clips_per_segment=clips_per_segment,
                         resize=tuple(geometry.resize), crop=geometry.crop, read_threads=2,
                         prefetch_buffer=2)
    source = ClipShardSource(sorted(paths.glob(shard_glob)))
    table = SegmentClipTable(source, cfg.clip_length, cfg.fps, cfg.clips_per_segment)
    feats, labels = [], {a: [] for a in PROBED}
    for batch in tsp_train_dataset(source, cfg, seed=0, train=False, table=table,
                                   process_index=0, process_count=1):
        out = np.asarray(fwd(variables, batch["clips"]))
        for j in np.flatnonzero(batch["valid"] & (batch["action_label"] >= 0)):
            row = int(batch["element_id"][j])
            video = videos[str(batch["video_id"][j])]
            t0, t1 = table.t_start[row], table.t_end[row]
            # The segment is one event's [start, end] (TSP ground truth rows = events).
            event = min(video["events"], key=lambda e: abs(e["start"] - t0) + abs(e["end"] - t1))
            feats.append(out[j])
            for a in PROBED:
                labels[a].append(values[a].index(str(event[a])))
        if max_clips and len(feats) >= max_clips:
            break
    return (np.stack(feats).astype(np.float32),
            {a: np.asarray(v, np.int32) for a, v in labels.items()}, values)


def load_probe_encoder(params_dir: str):
    """An exported encoder -> (jitted eval-mode forward, its variables, its input geometry)."""
    import jax

    from sa_tsp_jax import export

    model, variables = export.load_encoder(params_dir)
    fwd = jax.jit(lambda v, x: model.apply(v, x, train=False))
    return fwd, variables, export.load_geometry(params_dir)


def linear_probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                          test_y: np.ndarray, num_classes: int, l2: float = 1e-3,
                          steps: int = 500, lr: float = 0.5) -> float:
    """Accuracy on (test_x, test_y) of a softmax regression fitted on standardised train
    features by full-batch gradient descent (numpy; deterministic)."""
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    xs = [(x - mu) / sd for x in (train_x, test_x)]
    w = np.zeros((train_x.shape[1], num_classes))
    b = np.zeros(num_classes)
    onehot = np.eye(num_classes)[train_y]
    for _ in range(steps):
        logits = xs[0] @ w + b
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) / len(train_y)
        w -= lr * (xs[0].T @ g + l2 * w)
        b -= lr * g.sum(0)
    return float(np.mean((xs[1] @ w + b).argmax(1) == test_y))


def probe_encoders(encoders: dict[str, str], shards_dir: str, events_json: str) -> dict:
    """{name: params_dir} -> {name: {attribute: held-out probe accuracy}} plus "chance"
    (the most frequent training value, scored on the held-out clips)."""
    videos = json.loads(paths.read_text(events_json))["videos"]
    out = {}
    for name, params_dir in encoders.items():
        encoder = load_probe_encoder(params_dir)  # one load and one compile for both splits
        tr_x, tr_y, values = clip_features_and_attributes(
            encoder, paths.join(shards_dir, "train-*.tfrecord"), videos)
        te_x, te_y, _ = clip_features_and_attributes(
            encoder, paths.join(shards_dir, "val-*.tfrecord"), videos)
        out[name] = {a: round(linear_probe_accuracy(tr_x, tr_y[a], te_x, te_y[a],
                                                    len(values[a])), 3) for a in PROBED}
        out["chance"] = {a: round(float(np.mean(te_y[a] == np.bincount(tr_y[a]).argmax())), 3)
                         for a in PROBED}
        out["clips"] = {"train": len(tr_x), "held_out": len(te_x)}
    return out


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(
        description="Linear probes of encoder features: which event attributes (action, count, "
                    "size, colour, shape, speed) each pretraining objective's features carry, "
                    "on held-out clips.")
    parser.add_argument("--shards", required=True, help="folder with train-*/val-* shards")
    parser.add_argument("--events", required=True, help="synthetic_events.json")
    parser.add_argument("encoders", nargs="+", help="name=params_dir (sa_tsp_train exports)")
    args = parser.parse_args()
    result = probe_encoders(dict(e.split("=", 1) for e in args.encoders), args.shards,
                            args.events)
    print(json.dumps(result, indent=1))
