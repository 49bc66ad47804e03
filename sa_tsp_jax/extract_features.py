"""Feature extraction with a trained / imported encoder (stage "sa_tsp_extract").

Sliding 16-frame clips at stride 16 over whole videos (`data_prep.pipelines.
sliding_window_batches`, eval transform), batched and sharded over the device mesh; the pooled
backbone feature of each clip forms one (N, D) float32 array per video, N = floor((F - 16) /
16) + 1 (TSP / REFERENCE.md section 2). Outputs under `workdir`:

  features/<video_id>.npy      (N, D) float32, the PDVC layout (one file per video)
  features.h5                  {video_id: (N, D)}, the TSP layout
  gvf_<pooling>.h5             {video_id: (D,)}, max/avg pooled global video features
  failed.json                  [{"video_id", "error"}] of videos that could not be read
  summary.json                 counts and timings

Resumable: videos whose `.npy` exists are skipped; every file is written to a temporary name
and renamed. Videos are processed in chunks; when a chunk fails (corrupt record, undecodable
frame) its videos are retried one by one so a single bad video is reported, not fatal
(single host; on several hosts a failure stops the job, since hosts must stay in step).
"""
from __future__ import annotations

import json
import logging
import os
import time

import h5py
import jax
import jax.numpy as jnp
import numpy as np

from data_prep.infra import mesh as mesh_lib
from data_prep.infra.progress import Progress
from data_prep.pipelines.sliding_window import num_sliding_clips, sliding_window_batches
from data_prep.pipelines.source import ClipShardSource
from sa_tsp_jax import import_torch
from sa_tsp_jax.gvf import pool_features, write_gvf
from sa_tsp_jax.models.r2plus1d import R2Plus1D
from sa_tsp_jax.train import DTYPES, resolve_shards, to_host

log = logging.getLogger(__name__)


class RecordSubset(ClipShardSource):
    """The records `indices` of a ClipShardSource, renumbered 0..k-1 (a view, no copying).

    Lets the data layer's sliding-window pipeline run over the videos still to do.
    """

    def __init__(self, base: ClipShardSource, indices):  # a view: no super().__init__
        self._base = base
        self._indices = [int(i) for i in indices]
        self.shard_paths = base.shard_paths
        self.video_ids = [base.video_ids[i] for i in self._indices]
        self.num_frames = base.num_frames[self._indices]
        self.fps = base.fps[self._indices]

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, i: int):
        return self._base[self._indices[int(i)]]

    def labels(self, i: int):
        return self._base.labels(self._indices[int(i)])

    def __repr__(self) -> str:
        return f"RecordSubset({len(self)} of {self._base!r})"


def save_npy_atomic(path: str, array: np.ndarray) -> None:
    tmp = f"{path}.tmp-{os.getpid()}.npy"
    np.save(tmp, array)
    os.replace(tmp, path)


def write_json_atomic(path: str, obj) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def load_encoder(params_dir: str, dtype: str = "float32") -> tuple[R2Plus1D, dict]:
    """Backbone + its variables from a directory written by training or import_torch."""
    variables, cfg = import_torch.load_variables(params_dir)
    model = R2Plus1D(**cfg, dtype=DTYPES[dtype])
    return model, {"params": variables["params"]["backbone"],
                   "batch_stats": variables["batch_stats"]["backbone"]}


def make_extract_fn(model: R2Plus1D, mesh):
    """jit((variables, clips [B,T,H,W,3]) -> features [B, D] float32), batch-sharded."""
    batch = mesh_lib.batch_sharding(mesh)

    def fwd(variables, clips):
        return model.apply(variables, clips, train=False).astype(jnp.float32)

    return jax.jit(fwd, in_shardings=(mesh_lib.replicated(mesh), batch), out_shardings=batch)


def _extract_chunk(source, fn, variables, config, mesh, out_dir, progress, counters) -> None:
    """Runs the pipeline over `source` (a RecordSubset); writes each finished video."""
    ds = sliding_window_batches(
        source, batch_size=int(config.batch_size) // jax.process_count(),
        clip_length=config.clip_length, stride=config.stride, resize=tuple(config.resize),
        crop=config.crop, read_threads=config.get("read_threads", 4))
    sharding = mesh_lib.batch_sharding(mesh)
    pending: dict[str, np.ndarray] = {}
    filled: dict[str, int] = {}
    for batch in ds:
        feats = to_host(fn(variables, mesh_lib.global_batch({"clips": batch["clips"]},
                                                            sharding)["clips"]))
        if jax.process_count() > 1:  # rows of this host only
            per_host = len(batch["clips"])
            feats = feats[jax.process_index() * per_host:(jax.process_index() + 1) * per_host]
        for row in np.flatnonzero(batch["valid"]):
            vid = str(batch["video_id"][row])
            n = int(batch["num_clips"][row])
            if vid not in pending:
                pending[vid] = np.zeros((n, feats.shape[-1]), np.float32)
                filled[vid] = 0
            pending[vid][int(batch["clip_index"][row])] = feats[row]
            filled[vid] += 1
            if filled[vid] == n:
                save_npy_atomic(os.path.join(out_dir, f"{vid}.npy"), pending.pop(vid))
                counters["done"] += 1
        counters["clips"] += int(np.sum(batch["valid"]))
        counters["steps"] += 1
        progress.update(counters["steps"])
    if pending:
        raise RuntimeError(f"videos left incomplete: {sorted(pending)[:5]}")


def run(config, workdir: str) -> dict:
    """Extracts features of every video in `config.shards`; returns the summary dict."""
    t0 = time.time()
    out_dir = os.path.join(workdir, "features")
    os.makedirs(out_dir, exist_ok=True)
    mesh = mesh_lib.make_mesh([tuple(a) for a in config.mesh])
    model, host_vars = load_encoder(config.params_dir, config.get("dtype", "float32"))
    variables = jax.device_put(host_vars, mesh_lib.replicated(mesh))
    fn = make_extract_fn(model, mesh)

    source = ClipShardSource(resolve_shards(config.shards))
    first_of: dict[str, int] = {}
    for i, v in enumerate(source.video_ids):
        first_of.setdefault(v, i)
    duplicates = len(source) - len(first_of)
    if duplicates:
        log.warning("%d records repeat a video id of an earlier record; only the first "
                    "record of each video is extracted", duplicates)
    todo = [i for v, i in first_of.items()
            if not os.path.exists(os.path.join(out_dir, f"{v}.npy"))]
    log.info("%d videos, %d already extracted, %d to do", len(first_of),
             len(first_of) - len(todo), len(todo))
    per_host_bs = int(config.batch_size) // jax.process_count()
    chunk = int(config.get("videos_per_chunk", 64))
    clips = [num_sliding_clips(int(source.num_frames[i]), config.clip_length, config.stride)
             for i in todo]
    # Each chunk of videos ends with a padded batch: count batches per chunk.
    total_steps = sum(-(-sum(clips[k:k + chunk]) // per_host_bs)
                      for k in range(0, len(todo), chunk))
    progress = Progress(max(1, total_steps), items_per_step=per_host_bs,
                        desc="sa_tsp_extract", item_name="clips",
                        log_every_s=config.get("progress_every_s", 10.0))
    counters = {"done": 0, "clips": 0, "steps": 0}
    failed = []
    for start in range(0, len(todo), chunk):
        ids = todo[start:start + chunk]
        try:
            _extract_chunk(RecordSubset(source, ids), fn, variables, config, mesh, out_dir,
                           progress, counters)
        except Exception as chunk_error:  # isolate the bad video(s); see module docstring
            if jax.process_count() > 1:
                raise
            log.warning("chunk of %d videos failed (%s); retrying one by one", len(ids),
                        chunk_error)
            for i in ids:
                vid = source.video_ids[i]
                if os.path.exists(os.path.join(out_dir, f"{vid}.npy")):
                    continue
                try:
                    _extract_chunk(RecordSubset(source, [i]), fn, variables, config, mesh,
                                   out_dir, progress, counters)
                except Exception as e:  # noqa: BLE001 (reported, not fatal)
                    log.error("video %s (%s): %s", vid, source.shard_paths, e)
                    failed.append({"video_id": vid, "error": f"{type(e).__name__}: {e}"})
    progress.update(counters["steps"], force=True)

    summary = {"num_videos": len(first_of), "duplicate_records": duplicates,
               "extracted_now": counters["done"],
               "clips_now": counters["clips"], "failed": len(failed)}
    if jax.process_index() == 0:
        write_json_atomic(os.path.join(workdir, "failed.json"), failed)
        done_ids = [v for v in first_of
                    if os.path.exists(os.path.join(out_dir, f"{v}.npy"))]
        write_collections(workdir, out_dir, done_ids, config.get("gvf_poolings", ("max",)))
        summary["num_with_features"] = len(done_ids)
        summary["seconds"] = round(time.time() - t0, 2)
        write_json_atomic(os.path.join(workdir, "summary.json"), summary)
    if failed:
        log.warning("%d videos failed; see %s", len(failed),
                    os.path.join(workdir, "failed.json"))
    return summary


def write_collections(workdir: str, out_dir: str, video_ids, poolings) -> None:
    """features.h5 (TSP layout) and gvf_<pooling>.h5 from the per-video .npy files."""
    tmp = os.path.join(workdir, f"features.h5.tmp-{os.getpid()}")
    gvf = {p: {} for p in poolings}
    try:
        with h5py.File(tmp, "w") as f:
            for vid in video_ids:
                feats = np.load(os.path.join(out_dir, f"{vid}.npy"))
                f.create_dataset(vid, data=feats)
                for p in poolings:
                    gvf[p][vid] = pool_features(feats, p)
        os.replace(tmp, os.path.join(workdir, "features.h5"))
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    for p in poolings:
        write_gvf(os.path.join(workdir, f"gvf_{p}.h5"), gvf[p])
