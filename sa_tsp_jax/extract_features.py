"""Feature extraction with a trained / imported encoder (stage "sa_tsp_extract").

Sliding clips at a stride over whole videos (`data_prep.pipelines.sliding_window_batches`,
eval transform), batched and sharded over the devices; the pooled backbone feature of each
clip forms one (N, D) float32 array per video, N = floor((F - T) / stride) + 1 (TSP /
docs/reference.md section 2, "Feature extraction"). Outputs under `workdir` (local or `gs://`):

  features/<video_id>.npy      (N, D) float32, the PDVC layout (one file per video)
  features.h5                  {video_id: (N, D)}, the TSP layout
  gvf_<pooling>.h5             {video_id: (D,)}, max/avg pooled global video features
  failed.json                  [{"video_id", "error"}] of videos that could not be read
  summary.json                 counts and timings; `shorter_than_one_clip`: ids of videos
                               with fewer frames than a clip (one feature of a padded clip)
  fingerprint.json             what the features depend on (see below)

Input geometry: clip length T, resize, crop, frame normalisation and frame rate come from the
encoder export (`init_from/backbone_config.json`, sa_tsp_jax/export.py). A config value that
is empty or 0 means "as the export says"; a given value must equal the export's (ValueError
otherwise). The shards must store frames at the export's frame rate.

Resumable: videos whose `.npy` exists are skipped; every file is written atomically. The
outputs are only reused when `fingerprint.json` (a hash of the backbone variables, the
geometry, stride and dtype, and the size/mtime of every input shard) equals the current one;
otherwise the stage stops and says what changed, and `--config.force=True` deletes the old
outputs and extracts again. Videos are processed in chunks; when a chunk fails (corrupt
record, undecodable frame) its videos are retried one by one so a single bad video is
reported, not fatal.

Multi-host: every process extracts its own slice of the videos still to do (every
process_count-th one) on its local devices, and writes their `.npy` files itself (disjoint
files, so the workdir must be shared storage: a bucket or a network file system). The hosts
do not wait on each other while extracting; at the end the failed-video lists and counts are
gathered and process 0 alone writes features.h5, the GVF files, failed.json and
summary.json. The configs and shard lists are checked to be the same on every process first.
"""
from __future__ import annotations

import hashlib
import io
import logging
import time

import h5py
import jax
import jax.numpy as jnp
import numpy as np

from data_prep.infra import distributed, paths
from data_prep.infra import mesh as mesh_lib
from data_prep.infra.atomic_files import (
    atomic_write_bytes,
    atomic_write_json,
    clean_stale_temporaries,
)
from data_prep.infra.fingerprint import reconcile
from data_prep.infra.progress import Progress
from data_prep.infra.tree_names import key_path_name
from data_prep.pipelines.sliding_window import num_sliding_clips, sliding_window_batches
from data_prep.pipelines.source import ClipShardSource
from sa_tsp_jax import export
from sa_tsp_jax.gvf import pool_features, write_gvf
from sa_tsp_jax.models.r2plus1d import R2Plus1D
from sa_tsp_jax.shards_spec import resolve_shards, shard_signatures, shard_sizes

log = logging.getLogger(__name__)

# Bump when the meaning of the outputs changes (layout, clip placement, pooling).
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------- geometry
def _given(value) -> bool:
    """A config value the user set (empty, 0 and None mean: take it from the export)."""
    if value is None:
        return False
    if isinstance(value, str | tuple | list):
        return len(value) > 0
    return value != 0


def resolve_geometry(config, params_dir: str) -> export.InputGeometry:
    """The clip geometry of extraction: the export's, checked against the config's values.

    `config.clip_length`, `config.resize`, `config.crop` are optional: empty / 0 takes the
    export's value; a given value must equal it. An export without a geometry (written before
    it was recorded, or `import_torch --no_geometry`) needs all three in the config; its
    normalisation is then TSP's and its frame rate unchecked.
    """
    given = {k: config[k] for k in ("clip_length", "resize", "crop") if _given(config[k])}
    if "resize" in given:
        given["resize"] = tuple(int(x) for x in given["resize"])
    recorded = export.load_geometry(params_dir)
    if recorded is None:
        missing = [k for k in ("clip_length", "resize", "crop") if k not in given]
        if missing:
            raise ValueError(
                f"{paths.join(params_dir, export.CONFIG_FILE)} records no input geometry; "
                f"give {', '.join(missing)} in the extraction config (the values the encoder "
                "was trained with)")
        log.warning("%s records no input geometry: using the config's %s with TSP "
                    "normalisation", params_dir, given)
        return export.InputGeometry(clip_length=int(given["clip_length"]), fps=0.0,
                                    resize=given["resize"], crop=int(given["crop"]))
    for key, value in given.items():
        want = getattr(recorded, key)
        if (tuple(value) if key == "resize" else int(value)) != want:
            raise ValueError(
                f"extraction config {key}={value!r} but the encoder in {params_dir} was "
                f"trained with {key}={want!r} ({export.CONFIG_FILE}); leave {key} empty/0 to "
                "use the encoder's value")
    return recorded


def check_frame_rate(source: ClipShardSource, geometry: export.InputGeometry) -> None:
    """Raises ValueError naming a video whose shard stores another frame rate than the
    encoder saw (its clips would span another duration)."""
    if geometry.fps <= 0:
        return
    bad = np.flatnonzero(np.abs(source.fps - geometry.fps) > 1e-3)
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"video {source.video_ids[i]} ({len(bad)} videos in all, shards "
            f"{source.shard_paths[:3]}...) is stored at {source.fps[i]} fps but the encoder "
            f"was trained on {geometry.fps} fps clips: write the shards at {geometry.fps} fps")


# ----------------------------------------------------------------------------- fingerprint
def variables_sha256(variables) -> str:
    """sha256 over every leaf's name, dtype, shape and bytes (what the features depend on)."""
    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(variables)[0]:
        arr = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{key_path_name(path)}|{arr.dtype}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def extraction_fingerprint(host_vars, geometry: export.InputGeometry, config,
                           shard_paths) -> dict:
    """The record of what the outputs depend on (stored as fingerprint.json)."""
    return {
        "format_version": FORMAT_VERSION,
        "backbone_sha256": variables_sha256(host_vars),
        "geometry": geometry.to_json(),
        "stride": int(config.stride),
        "dtype": str(config.dtype),
        "shards": shard_signatures(shard_paths),
    }


def describe_changes(old: dict, new: dict) -> list[str]:
    """Human-readable differences between two fingerprints."""
    changes = []
    for key in sorted(set(old) | set(new)):
        if key == "shards" or old.get(key) == new.get(key):
            continue
        what = "encoder variables" if key == "backbone_sha256" else key
        changes.append(f"{what}: {old.get(key)!r} -> {new.get(key)!r}"
                       if key != "backbone_sha256" else f"{what} differ")
    old_shards = {p: (s, m) for p, s, m in old.get("shards", [])}
    new_shards = {p: (s, m) for p, s, m in new.get("shards", [])}
    for p in sorted(set(old_shards) - set(new_shards)):
        changes.append(f"shard no longer given: {p}")
    for p in sorted(set(new_shards) - set(old_shards)):
        changes.append(f"new shard: {p}")
    for p in sorted(set(old_shards) & set(new_shards)):
        if old_shards[p] != new_shards[p]:
            changes.append(f"shard changed (size, mtime {old_shards[p]} -> {new_shards[p]}): {p}")
    return changes


def reconcile_outputs(workdir: str, out_dir: str, fingerprint: dict, force: bool) -> None:
    """Makes the workdir's outputs belong to `fingerprint` (all processes call it;
    `data_prep.infra.fingerprint.reconcile`).

    Outputs of another fingerprint (or older outputs without one) are never mixed with new
    ones: without `force` this raises ValueError saying what changed; with `force` process 0
    deletes them. Then process 0 records the fingerprint, before any feature is written.
    """
    has_outputs = paths.is_dir(out_dir) and any(
        n.endswith(".npy") for n in paths.list_dir(out_dir))

    def remove_outputs():
        paths.remove_tree(out_dir)
        for name in ("features.h5", "failed.json", "summary.json"):
            paths.remove(paths.join(workdir, name))
        for name in paths.list_dir(workdir):
            if name.startswith("gvf_") and name.endswith(".h5"):
                paths.remove(paths.join(workdir, name))

    reconcile(workdir, fingerprint, force=force, has_outputs=has_outputs,
              remove_outputs=remove_outputs, what="features", describe=describe_changes)
    if distributed.is_main_process():
        paths.make_dirs(out_dir)


# ----------------------------------------------------------------------------- model
def make_extract_fn(model: R2Plus1D, mesh):
    """jit((variables, clips [B,T,H,W,3]) -> features [B, D] float32), batch-sharded."""
    batch = mesh_lib.batch_sharding(mesh)

    def fwd(variables, clips):
        return model.apply(variables, clips, train=False).astype(jnp.float32)

    return jax.jit(fwd, in_shardings=(mesh_lib.replicated(mesh), batch), out_shardings=batch)


def save_npy(path: str, array: np.ndarray) -> None:
    """`np.save` to a local or remote path, atomically."""
    buf = io.BytesIO()
    np.save(buf, array)
    atomic_write_bytes(path, buf.getvalue())


def load_npy(path: str) -> np.ndarray:
    return np.load(io.BytesIO(paths.read_bytes(path)))


def _extract_chunk(source, fn, variables, geometry, config, per_host_bs, mesh, out_dir,
                   progress, counters) -> None:
    """Runs the pipeline over `source` (a subset of this host's videos); writes each finished
    video's .npy."""
    ds = sliding_window_batches(
        source, batch_size=per_host_bs, clip_length=geometry.clip_length,
        stride=int(config.stride), resize=geometry.resize, crop=geometry.crop,
        mean=geometry.mean, std=geometry.std, process_index=0, process_count=1,
        read_threads=int(config.read_threads))
    sharding = mesh_lib.batch_sharding(mesh)
    pending: dict[str, np.ndarray] = {}
    filled: dict[str, int] = {}
    for batch in ds:
        # This host's mesh only (see the module docstring): a plain device_put, no collective.
        feats = np.asarray(fn(variables, jax.device_put(batch["clips"], sharding)))
        for row in np.flatnonzero(batch["valid"]):
            vid = str(batch["video_id"][row])
            n = int(batch["num_clips"][row])
            if vid not in pending:
                pending[vid] = np.zeros((n, feats.shape[-1]), np.float32)
                filled[vid] = 0
            pending[vid][int(batch["clip_index"][row])] = feats[row]
            filled[vid] += 1
            if filled[vid] == n:
                save_npy(paths.join(out_dir, f"{vid}.npy"), pending.pop(vid))
                counters["done"] += 1
                counters["written"].append(vid)
        counters["clips"] += int(np.sum(batch["valid"]))
        counters["steps"] += 1
        progress.update(counters["steps"])
    if pending:
        raise RuntimeError(f"videos left incomplete: {sorted(pending)[:5]}")


def _extract_slice(source, todo, fn, variables, geometry, config, per_host_bs, mesh, out_dir,
                   progress, counters) -> list[dict]:
    """Extracts the records `todo` in chunks; returns [{"video_id", "error"}] of failures."""
    chunk = int(config.videos_per_chunk)
    failed = []
    for start in range(0, len(todo), chunk):
        ids = todo[start:start + chunk]
        try:
            _extract_chunk(source.subset(ids), fn, variables, geometry, config,
                           per_host_bs, mesh, out_dir, progress, counters)
        except Exception as chunk_error:  # isolate the bad video(s); see module docstring
            log.warning("chunk of %d videos failed (%s); retrying one by one", len(ids),
                        chunk_error)
            for i in ids:
                vid = source.video_ids[i]
                if paths.exists(paths.join(out_dir, f"{vid}.npy")):
                    continue
                try:
                    _extract_chunk(source.subset([i]), fn, variables, geometry, config,
                                   per_host_bs, mesh, out_dir, progress, counters)
                except Exception as e:  # noqa: BLE001 (reported, not fatal)
                    log.error("video %s (%s): %s", vid, source.shard_paths, e)
                    failed.append({"video_id": vid, "error": f"{type(e).__name__}: {e}"})
    return failed


# ----------------------------------------------------------------------------- main
def run(config, workdir: str) -> dict:
    """Extracts features of every video in `config.shards`; returns the summary dict."""
    # --- Setup: same config and inputs on every process, stale temporaries gone.
    t0 = time.time()
    out_dir = paths.join(workdir, "features")
    distributed.check_same_across_processes(
        {k: v for k, v in config.to_dict().items() if k != "run"}, "the sa_tsp_extract config")
    shard_paths = resolve_shards(config.shards)
    distributed.check_same_across_processes(shard_sizes(shard_paths), "the shard list")
    if distributed.is_main_process():
        clean_stale_temporaries(out_dir)
        clean_stale_temporaries(workdir)

    # --- Encoder and geometry (from the export), one mesh over this host's devices.
    geometry = resolve_geometry(config, config.init_from)
    model, host_vars = export.load_encoder(config.init_from, config.dtype)
    mesh = mesh_lib.make_mesh([tuple(a) for a in config.mesh], devices=jax.local_devices())
    per_host_bs = int(config.data.batch_size) // jax.process_count()
    num_data = int(np.prod([mesh.shape[a] for a in mesh_lib.data_axes(mesh)]))
    if per_host_bs * jax.process_count() != int(config.data.batch_size) or per_host_bs % num_data:
        raise ValueError(f"batch_size {config.data.batch_size} must split evenly over "
                         f"{jax.process_count()} processes and {num_data} local data shards")
    variables = jax.device_put(host_vars, mesh_lib.replicated(mesh))
    fn = make_extract_fn(model, mesh)

    # --- Inputs, fingerprint, what is still to do.
    source = ClipShardSource(shard_paths)
    check_frame_rate(source, geometry)
    reconcile_outputs(workdir, out_dir,
                      extraction_fingerprint(host_vars, geometry, config, shard_paths),
                      bool(config.force))
    first_of: dict[str, int] = {}
    for i, v in enumerate(source.video_ids):
        first_of.setdefault(v, i)
    duplicates = len(source) - len(first_of)
    if duplicates:
        log.warning("%d records repeat a video id of an earlier record; only the first "
                    "record of each video is extracted", duplicates)
    # Shorter than one clip: their one feature comes from a clip padded past the video's end.
    short = [v for v, i in first_of.items() if int(source.num_frames[i]) < geometry.clip_length]
    if short:
        log.warning("%d videos are shorter than one clip (%d frames); each gets one feature of "
                    "a padded clip (listed in summary.json): %s", len(short),
                    geometry.clip_length, short[:5])
    present = set(paths.list_dir(out_dir)) if paths.is_dir(out_dir) else set()
    todo = [i for v, i in first_of.items() if f"{v}.npy" not in present]
    # Also a barrier: no process writes a feature before every process has listed the folder.
    distributed.check_same_across_processes(todo, "the list of videos to extract")
    log.info("%d videos, %d already extracted, %d to do", len(first_of),
             len(first_of) - len(todo), len(todo))

    # --- This host's slice, in chunks.
    mine = todo[jax.process_index()::jax.process_count()]
    chunk = int(config.videos_per_chunk)
    clips = [num_sliding_clips(int(source.num_frames[i]), geometry.clip_length,
                               int(config.stride)) for i in mine]
    # Each chunk of videos ends with a padded batch: count batches per chunk.
    total_steps = sum(-(-sum(clips[k:k + chunk]) // per_host_bs)
                      for k in range(0, len(mine), chunk))
    progress = Progress(max(1, total_steps), items_per_step=per_host_bs,
                        desc="sa_tsp_extract", item_name="clips",
                        log_every_s=config.progress_every_s)
    counters = {"done": 0, "clips": 0, "steps": 0, "written": []}
    failed = _extract_slice(source, mine, fn, variables, geometry, config, per_host_bs, mesh,
                            out_dir, progress, counters)
    progress.update(counters["steps"], force=True)

    # --- Gather the hosts' results; process 0 writes the shared files.
    gathered = distributed.allgather_objects((failed, counters))
    failed = sorted((f for host_failed, _ in gathered for f in host_failed),
                    key=lambda f: first_of[f["video_id"]])
    present = set(paths.list_dir(out_dir)) if paths.is_dir(out_dir) else set()
    unseen = [v for _, c in gathered for v in c["written"] if f"{v}.npy" not in present]
    if unseen:  # the same answer on every process: all raise, none waits
        raise RuntimeError(
            f"features written by other processes are not visible here ({unseen[:3]}...): "
            f"the workdir {workdir} must be storage every host sees (gs://, a network file "
            "system), not a local folder per host")
    done_ids = [v for v in first_of if f"{v}.npy" in present]
    summary = {"num_videos": len(first_of), "duplicate_records": duplicates,
               "extracted_now": sum(c["done"] for _, c in gathered),
               "clips_now": sum(c["clips"] for _, c in gathered), "failed": len(failed),
               "num_with_features": len(done_ids), "shorter_than_one_clip": short}
    if distributed.is_main_process():
        atomic_write_json(paths.join(workdir, "failed.json"), failed)
        write_collections(workdir, out_dir, done_ids, tuple(config.gvf_poolings))
        summary["seconds"] = round(time.time() - t0, 2)
        atomic_write_json(paths.join(workdir, "summary.json"), summary)
    distributed.sync("sa_tsp_extract_done")  # every process returns once the files exist
    if failed:
        log.warning("%d videos failed; see %s", len(failed), paths.join(workdir, "failed.json"))
    return summary


def write_collections(workdir: str, out_dir: str, video_ids, poolings) -> None:
    """features.h5 (TSP layout) and gvf_<pooling>.h5 from the per-video .npy files."""
    gvf = {p: {} for p in poolings}
    with paths.local_output(paths.join(workdir, "features.h5")) as tmp, \
            h5py.File(tmp, "w") as f:
        for vid in video_ids:
            feats = load_npy(paths.join(out_dir, f"{vid}.npy"))
            f.create_dataset(vid, data=feats)
            for p in poolings:
                gvf[p][vid] = pool_features(feats, p)
    for p in poolings:
        write_gvf(paths.join(workdir, f"gvf_{p}.h5"), gvf[p])
