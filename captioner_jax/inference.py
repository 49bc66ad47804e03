"""Stage "captioner_predict": dense captions of a split -> official submission JSON -> metrics.

Prediction is one jitted function per batch (forward, greedy decoding of every query with
`lax.scan`, batched over events and videos); PDVC's post-processing runs on the host
(`postprocess.video_predictions`). The trainers call `evaluate_split` every N epochs/steps.

  python launch.py --config configs/captioner/synthetic.py:predict --workdir DIR
reads the trained run in DIR (or in `init_from`: predict with a model trained
elsewhere): its vocabulary and model record (`build.load_trained_run`; a `data.vocab_path`
naming another vocabulary is an error) and its best (else latest) checkpoint; writes
DIR/predictions/<split>.json (atomically) and DIR/predictions/<split>_metrics.json.

Multi-host: every process predicts its slice of the videos (`eval.batch_size` is the global
batch, each host feeds batch / processes of it), the per-video results are gathered on every
process and ordered as the split's video list, so the submission written by process 0 equals
the one of a single process. Only process 0 runs the official evaluator and writes files; its
metrics are broadcast, so every process takes the same best-checkpoint decision.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import time

import jax
import numpy as np
from jax.experimental import multihost_utils

from captioner_jax import build, decoding, postprocess
from captioner_jax.data.feature_report import check_stage_features
from captioner_jax.data.pipeline import caption_dataset
from captioner_jax.objective import forward
from data_prep.infra import distributed, paths
from data_prep.infra import mesh as mesh_lib
from data_prep.infra.atomic_files import atomic_write_json
from data_prep.infra.checkpointing import Checkpointer
from data_prep.infra.loop import mesh_for_batch
from data_prep.infra.progress import Progress
from data_prep.pipelines.batching import pad_batch

log = logging.getLogger(__name__)


def host_rows(tree, mesh):
    """This process's rows of batch-sharded global arrays (leading axis split over the data
    axes of `mesh`), as numpy: the inverse of `mesh_lib.global_batch`."""
    if jax.process_count() > 1:
        spec = mesh_lib.batch_sharding(mesh).spec
        tree = multihost_utils.global_array_to_host_local_array(
            tree, mesh, jax.tree.map(lambda _: spec, tree))
    return jax.tree.map(np.asarray, tree)


def make_predict_fn(model, mode: str, max_len: int):
    """jitted (params, batch, word_gates=None) -> dict(probs [B,N], boxes [B,N,2],
    counts [B,C+1], tokens/logprobs [B,N,max_len], query_valid [B,N]).

    word_gates: `make_word_gate_fn(model)(params)` of the same params (built once per
    parameters, as `predict_split` does): the greedy steps look their word gates up instead
    of multiplying with the LSTM's word weight every step (same tokens; log-probabilities
    equal up to float summation order). None: the per-step product. The memory's part of the
    gates is projected once per call (`caption_heads.step_context(attention_gates=True)`)."""

    @jax.jit
    def predict(params, batch, word_gates=None):
        out = forward(model, params, batch, mode, train=False)
        step_fn, carry = decoding.caption_decoder_from_outputs(
            model, {"params": params}, out, word_gate_table=word_gates, attention_gates=True)
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


def make_word_gate_fn(model):
    """jitted params -> `decoding.word_gate_table` [V, 4R] (replicated like the params)."""
    return jax.jit(lambda params: decoding.word_gate_table(model, {"params": params}))


def predict_split(predict_fn, params, dataset, video_ids, vocab, mesh, *, batch_size: int,
                  mode: str, post_cfg, progress_total: int | None = None,
                  word_gates=None) -> dict:
    """Runs the model over an evaluation dataset -> {video_id: [entries]} of this host's
    videos. `batch_size`: videos per host and step; `word_gates`: see `make_predict_fn`."""
    results: dict[str, list[dict]] = {}
    sharding = mesh_lib.batch_sharding(mesh)
    progress = Progress(progress_total or 0, items_per_step=batch_size, desc="predict",
                        item_name="videos")
    for step, host in enumerate(dataset, 1):
        host = pad_batch(host, batch_size)
        pred = host_rows(
            predict_fn(params, mesh_lib.global_batch(host, sharding), word_gates), mesh)
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


def prestart_evaluator(references) -> bool:
    """Starts the METEOR jar now, on the process that evaluates (process 0), when there are
    references to evaluate against. Returns whether it started one.

    The jar's start is its JVM loading the paraphrase table: about 8 CPU-seconds in its own
    process, which every first evaluation of a stage waited for. Started with the stage, it
    loads while this process compiles and trains, and the evaluation finds it ready (the
    shared instance of `meteor.get_meteor`; the same numbers).
    """
    if not distributed.is_main_process() or not any(references or ()):
        return False
    from captioner_jax.evaluation.meteor import get_meteor

    get_meteor()
    return True


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
    """Predict + (optionally) write the submission + evaluate. -> (metrics, results), the
    same on every process (see the module docstring)."""
    global_batch = int(config.eval.batch_size)
    shards = int(np.prod([mesh.shape[a] for a in mesh_lib.data_axes(mesh)]))
    if global_batch % jax.process_count() or global_batch % shards:
        raise ValueError(f"eval.batch_size {global_batch} is not divisible by the "
                         f"{jax.process_count()} processes and the {shards} data shards")
    batch = global_batch // jax.process_count()
    in_cfg = build.input_config(config.data, batch)
    ds = caption_dataset(video_ids, videos, loader, vocab, in_cfg, seed=0, train=False)
    predict_fn = _cached_predict_fn(model, config.mode, int(config.eval.max_len))
    start = time.perf_counter()
    word_gates = _cached_word_gate_fn(model)(params)  # once per evaluation: fixed params
    results = predict_split(
        predict_fn, params, ds, video_ids, vocab, mesh, batch_size=batch, mode=config.mode,
        post_cfg=config.eval, progress_total=-(-len(video_ids) // global_batch),
        word_gates=word_gates)
    results = gather_results(results, video_ids)
    seconds = time.perf_counter() - start
    metrics = {"videos": len(results)}
    if distributed.is_main_process():
        if out_path:
            atomic_write_json(out_path, postprocess.submission(results))
        refs = [r for r in config.eval.references if r]
        if refs and results:
            metrics.update(evaluate_results(results, refs, config.eval))
    metrics = distributed.allgather_objects(metrics)[0]
    metrics["predict_seconds"] = seconds
    return metrics, results


def gather_results(results: dict, video_ids) -> dict:
    """Every host's {video_id: entries} merged on all hosts (JAX collectives, no shared
    filesystem needed), in the order of `video_ids` (so the JSON equals a 1-process one)."""
    merged = {}
    for part in distributed.allgather_objects(results):
        merged.update(part)
    return {v: merged[v] for v in video_ids if v in merged}


@functools.lru_cache(maxsize=8)
def _cached_predict_fn(model, mode, max_len):
    return make_predict_fn(model, mode, max_len)


@functools.lru_cache(maxsize=8)
def _cached_word_gate_fn(model):
    return make_word_gate_fn(model)


def restore_params(workdir: str, abstract_params=None):
    """Params of the best checkpoint in `workdir/best`, else of the latest training one.
    -> (params as NumPy arrays, "best" | "checkpoints", step).

    Read to host memory, not onto the devices that saved them: a run trained on other
    devices (another count, hosts or accelerator) predicts here all the same; the caller
    places them. `abstract_params` (shapes/dtypes) casts each leaf to its dtype."""
    for sub in ("best", "checkpoints"):
        directory = paths.join(workdir, sub)
        if not paths.is_dir(directory):
            continue
        with Checkpointer(directory) as ckpt:
            step = ckpt.latest_step()
            if step is None:
                continue
            params = ckpt.restore_to_host(step)["params"]
        log.info("restored %s params of step %d", sub, step)
        if abstract_params is not None:
            params = jax.tree.map(lambda a, x: np.asarray(x, a.dtype), abstract_params, params)
        return params, sub, step
    raise FileNotFoundError(f"no checkpoint under {workdir}/best or {workdir}/checkpoints")


def run(config, workdir: str) -> dict:
    """Stage entry point (see the module docstring)."""
    trained_dir = config.init_from or workdir
    prestart_evaluator(config.eval.references)
    trained = build.load_trained_run(trained_dir, config.data)
    split_path = config.predict.captions or config.data.val_captions
    videos = build.read_split(split_path)
    video_ids = build.video_id_table(videos, int(config.data.get("max_val_videos", 0)))
    distributed.check_same_across_processes(
        {"split": split_path, "videos": video_ids, "trained": trained.info},
        "captioner_predict inputs")
    loader = build.feature_loader(config.data)
    # Every bad feature file in one report (a corrupt video is left out of the submission).
    feature_problems, _ = check_stage_features(loader, {"predict": video_ids}, workdir,
                                               "captioner_predict", config.data)
    trained.check_feature_dim(loader.load(video_ids[0]).shape[1])
    mesh, _ = mesh_for_batch(config.mesh, int(config.eval.batch_size), int(config.num_devices))
    model = trained.build_model(config.model)
    params, which, step = restore_params(trained_dir)
    # (jit, not device_put: a multi-host replicated sharding spans other hosts' devices.)
    params = jax.jit(lambda p: p, out_shardings=mesh_lib.replicated(mesh))(params)
    name = paths.as_path(split_path).stem
    out_dir = paths.join(workdir, "predictions")
    with contextlib.closing(loader):
        metrics, _ = evaluate_split(config, model, params, trained.vocab, loader, videos,
                                    video_ids, mesh, out_path=paths.join(out_dir, f"{name}.json"))
    metrics.update(checkpoint=which, checkpoint_step=step, feature_problems=feature_problems)
    if distributed.is_main_process():
        atomic_write_json(paths.join(out_dir, f"{name}_metrics.json"), metrics,
                          default=float)
    log.info("predictions of %s: %s", name, {k: v for k, v in metrics.items()
                                             if not isinstance(v, dict)})
    return metrics
