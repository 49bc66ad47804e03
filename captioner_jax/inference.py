"""Stage "captioner_predict": dense captions of a split -> official submission JSON -> metrics.

Prediction is one jitted function per batch (forward, greedy decoding of every query with
`lax.scan`, batched over events and videos); PDVC's post-processing runs on the host
(`postprocess.video_predictions`). The trainer calls `evaluate_split` every N epochs.

  python launch.py --config configs/captioner/synthetic.py:predict --workdir DIR
reads the best (else the latest) checkpoint of DIR (or of `predict.checkpoint_dir`: predict
with a model trained elsewhere), writes DIR/predictions/<split>.json (atomically) and
DIR/predictions/<split>_metrics.json.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from captioner_jax import build, decoding, postprocess
from captioner_jax.data.pipeline import caption_dataset
from captioner_jax.objective import forward
from data_prep.infra.atomic_files import atomic_write_json
from data_prep.infra import mesh as mesh_lib
from data_prep.infra.progress import Progress
from data_prep.pipelines.batching import pad_batch

log = logging.getLogger(__name__)


def make_predict_fn(model, mode: str, max_len: int):
    """jitted (params, batch) -> dict(probs [B,N], boxes [B,N,2], counts [B,C+1],
    tokens/logprobs [B,N,max_len], query_valid [B,N])."""

    @jax.jit
    def predict(params, batch):
        out = forward(model, params, batch, mode, train=False)
        step_fn, carry = decoding.caption_decoder_from_outputs(model, {"params": params}, out)
        tokens, logprobs, _ = decoding.decode_tokens(step_fn, carry, max_len=max_len)
        b, n = out["logits"].shape[1:]
        return {
            "probs": jax.nn.sigmoid(out["logits"][-1]),
            "boxes": out["boxes"][-1],
            "counts": out["counts"][-1],
            "tokens": tokens.reshape(b, n, max_len),
            "logprobs": logprobs.reshape(b, n, max_len),
            "query_valid": out["query_valid"],
        }

    return predict


def predict_split(predict_fn, params, dataset, video_ids, vocab, sharding, *, batch_size: int,
                  mode: str, post_cfg, progress_total: int | None = None) -> dict:
    """Runs the model over an evaluation dataset -> {video_id: [entries]} (this host)."""
    results: dict[str, list[dict]] = {}
    progress = Progress(progress_total or 0, items_per_step=batch_size, desc="predict",
                        item_name="videos")
    for step, host in enumerate(dataset, 1):
        host = pad_batch(host, batch_size)
        pred = jax.device_get(predict_fn(params, mesh_lib.global_batch(host, sharding)))
        pred = {k: np.asarray(v) for k, v in pred.items()}
        for i in range(batch_size):
            if not host["valid"][i]:
                continue
            vid = video_ids[int(host["index"][i])]
            results[vid] = postprocess.video_predictions(
                pred["probs"][i], pred["boxes"][i], pred["counts"][i], pred["tokens"][i],
                pred["logprobs"][i], float(host["duration"][i]), vocab,
                query_valid=pred["query_valid"][i],
                rerank=bool(post_cfg.rerank) and mode == "queries",
                alpha=float(post_cfg.alpha), temperature=float(post_cfg.temperature))
        progress.update(step)
    return results


def evaluate_results(results: dict, references, eval_cfg) -> dict:
    from captioner_jax.evaluation import evaluate_submission

    sub = postprocess.submission(results)
    return evaluate_submission(sub, list(references), version=str(eval_cfg.version),
                               soda=bool(eval_cfg.soda))


def best_score(metrics: dict) -> float:
    """PDVC's checkpoint criterion ("dvc"): METEOR + SODA_c (SODA_c when computed)."""
    return float(metrics.get("METEOR", 0.0)) + float(metrics.get("SODA_c", 0.0))


def evaluate_split(config, model, params, vocab, loader, videos, video_ids, mesh, *,
                   out_path: str | None = None) -> tuple[dict, dict]:
    """Predict + (optionally) write the submission + evaluate. -> (metrics, results)."""
    batch = int(config.eval.batch_size)
    in_cfg = build.input_config(config.data, batch)
    ds = caption_dataset(video_ids, videos, loader, vocab, in_cfg, seed=0, train=False)
    predict_fn = _cached_predict_fn(model, config.mode, int(config.eval.max_len))
    start = time.perf_counter()
    results = predict_split(
        predict_fn, params, ds, video_ids, vocab, mesh_lib.batch_sharding(mesh),
        batch_size=batch, mode=config.mode, post_cfg=config.eval,
        progress_total=-(-len(video_ids) // batch))
    results = gather_results(results)
    seconds = time.perf_counter() - start
    if out_path and jax.process_index() == 0:
        atomic_write_json(out_path, postprocess.submission(results))
    metrics = {"predict_seconds": seconds, "videos": len(results)}
    refs = [r for r in config.eval.references if r]
    if refs and results:
        metrics.update(evaluate_results(results, refs, config.eval))
    return metrics, results


def gather_results(results: dict) -> dict:
    """Merges every host's {video_id: entries} (each host predicts its own slice) on all
    hosts, through JAX's collectives (no shared filesystem needed). One host: unchanged."""
    if jax.process_count() == 1:
        return results
    from jax.experimental import multihost_utils

    data = np.frombuffer(json.dumps(results).encode("utf-8"), np.uint8)
    sizes = multihost_utils.process_allgather(np.asarray([len(data)], np.int64))
    padded = np.zeros(int(np.max(sizes)), np.uint8)
    padded[: len(data)] = data
    every = multihost_utils.process_allgather(padded)
    merged = {}
    for size, row in zip(np.asarray(sizes).reshape(-1), np.asarray(every)):
        merged.update(json.loads(bytes(row[: int(size)]).decode("utf-8")))
    return merged


@functools.lru_cache(maxsize=8)
def _cached_predict_fn(model, mode, max_len):
    return make_predict_fn(model, mode, max_len)


def restore_params(workdir: str, abstract_params=None):
    """Params of the best checkpoint in `workdir/best`, else of the latest training one."""
    from data_prep.infra.checkpointing import Checkpointer

    for sub, key in (("best", "params"), ("checkpoints", "params")):
        directory = os.path.join(workdir, sub)
        if not os.path.isdir(directory):
            continue
        ckpt = Checkpointer(directory)
        step = ckpt.latest_step()
        if step is None:
            ckpt.close()
            continue
        state = ckpt.restore(step, None)
        ckpt.close()
        log.info("restored %s params of step %d", sub, step)
        params = state[key]
        if abstract_params is not None:
            params = jax.tree.map(lambda a, x: jnp.asarray(x, a.dtype), abstract_params, params)
        return params, sub, step
    raise FileNotFoundError(f"no checkpoint under {workdir}/best or {workdir}/checkpoints")


def run(config, workdir: str) -> dict:
    """Stage entry point (see the module docstring)."""
    split_path = config.predict.captions or config.data.val_captions
    train_videos = build.read_split(config.data.train_captions) if config.data.get(
        "train_captions") else None
    vocab = build.load_vocab(config.data, train_videos)
    videos = build.read_split(split_path)
    video_ids = build.video_id_table(videos, int(config.data.get("max_val_videos", 0)))
    loader = build.feature_loader(config.data)
    mesh = build.make_mesh(config)
    model = build.build_model(config.model, vocab.size + 1)
    params, which, step = restore_params(config.init_from or workdir)
    params = jax.device_put(params, mesh_lib.replicated(mesh))
    name = os.path.splitext(os.path.basename(split_path))[0]
    out_dir = os.path.join(workdir, "predictions")
    os.makedirs(out_dir, exist_ok=True)
    metrics, _ = evaluate_split(config, model, params, vocab, loader, videos, video_ids, mesh,
                                out_path=os.path.join(out_dir, f"{name}.json"))
    metrics.update(checkpoint=which, checkpoint_step=step)
    atomic_write_json(os.path.join(out_dir, f"{name}_metrics.json"),
                      json.loads(json.dumps(metrics, default=float)))
    log.info("predictions of %s: %s", name, {k: v for k, v in metrics.items()
                                             if not isinstance(v, dict)})
    return metrics
