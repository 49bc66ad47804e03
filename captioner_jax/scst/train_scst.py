"""Stage "captioner_scst": self-critical fine-tuning of a trained PDVC captioner.

  python launch.py --config configs/captioner/synthetic_scst.py:root=DATA,init=XE_WORKDIR \
      --workdir DIR

`run` reads top to bottom in sections, with the XE trainer's kit (`data_prep.infra.resume`,
`data_prep.infra.loop`): data (train captions, optionally + a held-out ~80% of the validation
videos as the SA-TSP report did, the rest kept for evaluation) -> the XE run (its vocabulary,
model record and best, else latest, parameters; `build.load_trained_run`) -> mesh (checked
against the batch and the hosts) -> trainable subset (caption head by default), jitted
sampler (K samples + greedy per GT event in one call) and donated jitted update -> resources
(checkpoints, metrics, preemption guard; closed on every exit) -> restore or init ->
evaluations left undone by a kill -> loop. Rewards are computed on the host
(`rewards.batch_rewards`: CIDEr-D with document frequencies from the training references,
optional METEOR mix). Logged values are means over the steps since the previous line.
Evaluation with GT proposals on the held-out videos before SCST (step 0) and every
`eval_every_steps`; best parameters by `scst.best_metric` in DIR/best (so `captioner_predict`
can read DIR, which also gets the XE run's vocab.json and model_info.json);
DIR/scst_summary.json lists the evaluations, "xe" (step 0) and "final" (the last one).

Events are the GT segments (PDVC's GT-proposal mode, the report's "METEOR with GT proposals"
setting); each event's reward compares its caption with that event's GT sentence.

Overlap (`scst.overlap`): the host reward computation of batch i runs while the device samples
batch i+1; batch i+1 is then sampled with the parameters before update i (one update stale,
a deliberate, small off-policy lag; the log-probabilities in the loss are always recomputed
with the current parameters). Steps that checkpoint or evaluate are synchronous, so a run
resumed from a checkpoint continues exactly. A preemption (SIGTERM) makes its step
synchronous too: the step after it then samples with fresh parameters, one lag fewer than an
uninterrupted overlapped run (without overlap a preempted run resumes exactly).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging

import jax
import jax.numpy as jnp
import numpy as np

from captioner_jax import build, inference
from captioner_jax.data.feature_report import check_stage_features
from captioner_jax.scst.pdvc_decoder import pdvc_build_decoder
from captioner_jax.scst.rewards import CaptionReward, batch_rewards
from captioner_jax.scst.sampler import make_sampler
from captioner_jax.scst.scst_data import build_reward, split_validation, write_reference_subsets
from captioner_jax.scst.update import (
    init_state,
    make_optimizer,
    make_update_step,
    trainable_labels,
)
from data_prep.infra import distributed, paths, resume
from data_prep.infra import mesh as mesh_lib
from data_prep.infra.atomic_files import atomic_write_json
from data_prep.infra.checkpointing import Checkpointer
from data_prep.infra.loop import itstime, mesh_for_batch
from data_prep.infra.metrics import MetricWriter
from data_prep.infra.progress import Progress
from data_prep.infra.tree_names import key_path_name

log = logging.getLogger(__name__)


@dataclasses.dataclass
class _Data:
    videos: dict  # train + the validation videos added to training
    train_ids: list
    eval_videos: dict
    eval_ids: list
    eval_refs: list  # reference files restricted to the evaluation videos
    loader: object
    feature_problems: int = 0  # missing / corrupt feature files (feature_problems.json)


def _load_data(config, workdir: str) -> tuple[_Data, dict]:
    """(SCST data, the training captions)."""
    sc = config.scst
    train_videos = build.read_split(config.data.train_captions)
    loader = build.feature_loader(config.data)
    val_videos = build.read_split(config.data.val_captions) if config.data.val_captions else {}
    extra_ids, eval_ids = split_validation(
        sorted(val_videos), float(sc.train_val_fraction), int(sc.split_seed))
    videos = dict(train_videos)
    videos.update({v: val_videos[v] for v in extra_ids})
    zero_fill = bool(config.data.zero_fill_missing)
    train_ids = build.usable_ids(loader, videos, workdir, zero_fill, "train")
    if eval_ids:
        eval_ids = build.usable_ids(loader, eval_ids, workdir, zero_fill, "eval")
    if eval_ids and int(config.data.get("max_val_videos", 0)):
        eval_ids = eval_ids[: int(config.data.max_val_videos)]
    # Every bad feature file in one report; corrupt videos left out up front (not each epoch).
    problems, corrupt = check_stage_features(
        loader, {"train": train_ids, "eval": eval_ids}, workdir, "captioner_scst", config.data)
    train_ids = [v for v in train_ids if v not in corrupt]
    eval_ids = [v for v in eval_ids if v not in corrupt]
    eval_refs = write_reference_subsets(
        [r for r in config.eval.references if r], set(eval_ids), paths.join(workdir, "refs"))
    if distributed.is_main_process():
        atomic_write_json(paths.join(workdir, "scst_split.json"),
                          {"train_extra_val": sorted(extra_ids), "eval": sorted(eval_ids)})
    log.info("SCST: %d train videos (%d from validation), %d held-out evaluation videos",
             len(train_ids), len(extra_ids), len(eval_ids))
    eval_videos = {v: val_videos[v] for v in eval_ids}
    return _Data(videos, train_ids, eval_videos, eval_ids, eval_refs, loader,
                 problems), train_videos


def _eval_config(config, eval_refs):
    """The evaluation config: GT proposals, the held-out references, no reranking."""
    eval_cfg = config.copy_and_resolve_references()
    with eval_cfg.unlocked():
        eval_cfg.mode = "gt_proposals"
        eval_cfg.eval.references = list(eval_refs)
        eval_cfg.eval.rerank = False
    return eval_cfg


def _evaluate(step: int, params, *, eval_cfg, model, vocab, data: _Data, mesh, workdir: str,
              writer: MetricWriter, best_ckpt: Checkpointer, evals: resume.EvaluationLog,
              best_metric: str) -> dict:
    """GT-proposal evaluation at `step` on the held-out videos: predictions, best checkpoint
    (steps > 0 only: step 0 holds the XE parameters), then the record in scst_summary.json,
    then the metrics line (a kill anywhere in here makes the resumed run redo it)."""
    out_path = paths.join(workdir, "predictions", f"eval_step{step}.json")
    metrics, _ = inference.evaluate_split(eval_cfg, model, params, vocab, data.loader,
                                          data.eval_videos, data.eval_ids, mesh,
                                          out_path=out_path)
    flat = {k: float(v) for k, v in resume.metrics_line(metrics).items()}
    log.info("step %d (GT proposals, %d held-out videos): METEOR %.3f CIDEr %.3f "
             "BLEU4 %.3f", step, len(data.eval_ids), flat.get("METEOR", float("nan")),
             flat.get("CIDEr", float("nan")), flat.get("Bleu_4", float("nan")))
    prev_best = max((e.get(best_metric, -np.inf) for e in evals.evals if e["step"] != step),
                    default=-np.inf)
    if step > 0 and flat.get(best_metric, -np.inf) > prev_best:
        if step not in best_ckpt.all_steps():  # a kill after this save redoes the evaluation
            best_ckpt.save(step, {"params": params}, force=True)
            best_ckpt.wait()
    extra = {"final": dict(flat, step=step)}
    if step == 0:
        extra["xe"] = flat
    evals.record(step, flat, **extra)
    writer.write(step, flat, split="val")
    return flat


@dataclasses.dataclass
class _Pending:
    """A sampled batch whose rewards and update are still to do."""

    step: int
    batch: dict  # global arrays
    sampled: dict


def _global_array(value: np.ndarray, sharding):
    """The same global numpy array on every process -> a jax.Array with `sharding`."""
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def _finish_step(pending: _Pending, state, *, update, vocab, reward_fn: CaptionReward, k: int,
                 baseline: str, batch_sharding, in_flight=None):
    """Host rewards of a sampled batch, then the (async) update. -> (state, metrics: device
    metrics of the update + the host reward metrics as float32).

    Every process scores the whole global batch (gathered), as one process would: rewards
    of a row do not depend on the others, and the logged batch means are then those of a
    single-process run. `in_flight`: the next batch's samples, dispatched before this call and
    computed by the device while the host scores this batch; waited for before the update
    donates the parameters that sampling reads (the device would run the two in order)."""
    g = distributed.to_host({"captions": pending.batch["captions"],
                             "gt_valid": pending.batch["gt_valid"],
                             "valid": pending.batch["valid"], **pending.sampled})
    b, e = g["gt_valid"].shape
    event_valid = np.asarray(g["gt_valid"], bool) & np.asarray(g["valid"], bool)[:, None]
    adv, mask, host_metrics = batch_rewards(
        g["captions"].reshape(b * e, -1), event_valid.reshape(-1), g["sample_tokens"],
        g.get("greedy_tokens"), vocab, reward_fn, k, baseline)
    if in_flight is not None:
        jax.block_until_ready(in_flight)
    state, metrics = update(state, pending.batch, pending.sampled["sample_tokens"],
                            _global_array(mask, batch_sharding),
                            _global_array(adv, batch_sharding))
    metrics = dict(metrics, **{name: np.float32(v) for name, v in host_metrics.items()})
    return state, metrics


def _log_step(step: int, metrics: dict, *, window, writer: MetricWriter, progress: Progress,
              every: int, total: int) -> None:
    """Adds a finished step's metrics to the window; writes the window's means when due."""
    window.add(metrics)
    if itstime(step, every, total):
        logged = window.flush(step)
        writer.write(step, dict(logged, **progress.rates(step)))
        progress.show(logged)


def run(config, workdir: str) -> dict:
    """Stage entry point (see the module docstring). Returns {"steps", "xe", "final"} or,
    when preempted, {"steps": the checkpointed step, "preempted": True}."""
    sc = config.scst
    paths.make_dirs(workdir)
    # ------------------------------------------------------------------ data
    data, train_videos = _load_data(config, workdir)
    distributed.check_same_across_processes(
        {"config": build.config_fingerprint(config), "train": data.train_ids,
         "eval": data.eval_ids}, "captioner_scst config and data")
    feature_dim = data.loader.load(data.train_ids[0]).shape[1]

    # ------------------------------------------------------------------ the XE run
    key = jax.random.key(int(config.seed))
    trained = build.load_trained_run(config.init_from, config.data) if config.init_from else None
    if trained is not None:
        trained.check_feature_dim(feature_dim)
        vocab, model, model_cfg = trained.vocab, trained.build_model(config.model), \
            trained.info["model"]
    else:
        log.warning("SCST from a randomly initialised captioner (config.init_from is empty)")
        vocab = build.load_vocab(config.data, train_videos)
        model, model_cfg = build.build_model(config.model, vocab.size + 1), config.model
    build.write_model_info(workdir, build.model_info(config, vocab, feature_dim, model_cfg),
                           vocab)
    t = int(config.data.num_steps)
    dummy = (jnp.zeros((1, t, feature_dim)), jnp.ones((1, t), bool), jnp.ones((1,)))

    def init_fn(init_key):
        return model.init({"params": init_key}, *dummy, method=type(model).init_all)["params"]

    abstract_params = jax.eval_shape(init_fn, key)
    if trained is not None:
        params, which, xe_step = inference.restore_params(config.init_from, abstract_params)
        log.info("SCST starts from the %s checkpoint (step %d) of %s", which, xe_step,
                 config.init_from)
    else:
        params = jax.jit(init_fn)(key)
    reward_fn = build_reward(sc, [data.videos[v].sentences for v in data.train_ids], vocab,
                             int(config.data.max_caption_len))

    # ------------------------------------------------------------------ mesh
    global_batch = int(config.data.batch_size)
    mesh, per_host = mesh_for_batch(config.mesh, global_batch, int(config.num_devices))
    batch_sharding = mesh_lib.batch_sharding(mesh)

    # ------------------------------------------------------------------ jitted steps
    trainable = list(sc.trainable)
    tx = make_optimizer(params, learning_rate=float(sc.lr), trainable=trainable,
                        weight_decay=float(sc.weight_decay), grad_clip=float(sc.grad_clip))
    labels = trainable_labels(params, trainable)
    backbone_grad = any(
        lab == "train" and "caption_cell" not in key_path_name(path)
        for path, lab in jax.tree_util.tree_leaves_with_path(labels))
    abstract = jax.eval_shape(lambda p: init_state(p, tx), abstract_params)
    shardings = mesh_lib.param_shardings(abstract, mesh, rule=str(config.get("sharding",
                                                                              "replicate")))
    k = int(sc.num_samples)
    baseline = str(sc.baseline)
    sampler = make_sampler(
        pdvc_build_decoder(model), num_samples=k, max_len=int(sc.max_len),
        temperature=float(sc.temperature), with_greedy=baseline == "greedy")
    update = make_update_step(
        pdvc_build_decoder(model, backbone_grad=backbone_grad), tx, num_samples=k,
        normalize=str(sc.normalize), state_sharding=shardings)
    finish = functools.partial(_finish_step, update=update, vocab=vocab, reward_fn=reward_fn,
                               k=k, baseline=baseline, batch_sharding=batch_sharding)
    base_key = jax.random.fold_in(key, 7)

    # ------------------------------------------------------------------ resources
    total_steps = int(sc.total_steps)
    eval_every = int(sc.eval_every_steps) if data.eval_ids else 0
    eval_before = bool(sc.get("eval_before", True)) and bool(data.eval_ids)
    if eval_every or eval_before:
        inference.prestart_evaluator(data.eval_refs)
    log_every = int(config.log_every_steps)
    ckpt_every = int(config.checkpoint_every_steps)
    overlap = bool(sc.overlap)
    with contextlib.ExitStack() as stack:
        ckpt, best_ckpt, writer, guard, window = resume.enter_resources(
            stack, workdir, config.keep_checkpoints, best=True, close=data.loader.close)
        train_iter = build.train_iterator(config, data.train_ids, data.videos, data.loader,
                                          vocab, per_host)

        # -------------------------------------------------------------- restore or init
        state, start = resume.restore_or_init(
            ckpt, window, writer, abstract, shardings,
            functools.partial(jax.jit(lambda p: init_state(p, tx), out_shardings=shardings),
                              params),
            train_iter)
        evals = resume.EvaluationLog(paths.join(workdir, "scst_summary.json"),
                                          {"xe": None, "final": None})
        evaluate = functools.partial(
            _evaluate, eval_cfg=_eval_config(config, data.eval_refs), model=model, vocab=vocab,
            data=data, mesh=mesh, workdir=workdir, writer=writer, best_ckpt=best_ckpt,
            evals=evals, best_metric=str(sc.best_metric))

        # -------------------------------------------------------------- undone evaluation
        due = (eval_before if start == 0 else
               bool(eval_every) and itstime(start, eval_every, total_steps))
        if due and evals.done(start):
            resume.restore_eval_line(writer, evals, start)
        elif due:
            evaluate(start, state["params"])

        # -------------------------------------------------------------- loop
        progress = Progress(total_steps, items_per_step=global_batch, desc="scst",
                            item_name="videos")
        log_step = functools.partial(_log_step, window=window, writer=writer,
                                     progress=progress, every=log_every, total=total_steps)
        pending = None
        for step in range(start + 1, total_steps + 1):
            host = next(train_iter)
            batch = mesh_lib.global_batch(host, batch_sharding)
            sampled = sampler(state["params"], batch, jax.random.fold_in(base_key, step))
            if pending is not None:  # the device samples `step` meanwhile
                state, metrics = finish(pending, state, in_flight=sampled)
                log_step(pending.step, metrics)
            pending = _Pending(step, batch, sampled)
            stop = guard.should_stop(step)
            evaluating = bool(eval_every) and itstime(step, eval_every, total_steps)
            if (not overlap or stop or evaluating or step == total_steps
                    or itstime(step, ckpt_every, last=False)):
                state, metrics = finish(pending, state)
                pending = None
                log_step(step, metrics)
                resume.save_checkpoint(ckpt, window, step, state, train_iter, ckpt_every,
                                            force=stop)
                if stop:
                    log.warning("preempted: stopped after the checkpoint of step %d", step)
                    return {"steps": step, "preempted": True}
                if evaluating:
                    evaluate(step, state["params"])
            progress.update(step)
        resume.save_checkpoint(ckpt, window, total_steps, state, train_iter, ckpt_every,
                                    force=True)

    return {"steps": total_steps, "xe": evals.data.get("xe"),
            "final": evals.data.get("final") or {}, "feature_problems": data.feature_problems}
