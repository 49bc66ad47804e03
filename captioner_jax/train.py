"""Stage "captioner_train": cross-entropy training of the PDVC captioner (big_vision style).

  python launch.py --config configs/captioner/synthetic.py --workdir DIR

`run` reads top to bottom in sections: data (captions, vocabulary, features; missing features
reported) -> mesh (checked against the batch and the hosts) -> model, optimizer and the
trained-run record (DIR/vocab.json + DIR/model_info.json, read by every later stage) ->
jitted steps -> resources (checkpoints, metrics, preemption guard; closed on every exit) ->
restore or init -> evaluations left undone by a kill -> loop.

The loop: one donated jitted update per step (forward, per-layer Hungarian matching, PDVC's
losses, Adam + L2 decay + grad clipping, PDVC's step schedule); every `log_every_steps` one
metrics line whose values ("loss" included) are the means over the steps since the previous
line; Orbax checkpoint {params, opt_state, step} + Grain iterator every
`checkpoint_every_steps`; on SIGTERM a checkpoint of the current step and a clean return
("preempted": True); every `eval_every_epochs` the official metrics on the validation split,
the best parameters by METEOR + SODA_c (PDVC's "dvc" criterion) in DIR/best. Resume is exact
(see `data_prep.infra.resume`).

Learned-proposal mode ("queries") matches on the host between two jitted programs: the forward
gives the matching costs (and hands its outputs and pullback on), SciPy's Hungarian solver
assigns on the host, and the update step takes the assignment and the forward's outputs as
inputs (the forward runs once per step, as in PDVC). A `jax.pure_callback` inside the step
would do the same in one program, but JAX never writes programs with host callbacks to the
persistent compilation cache, so every restart recompiled the step (minutes).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging

import jax
import jax.numpy as jnp
import numpy as np
import optax

from captioner_jax import build, inference
from captioner_jax.data.feature_report import check_stage_features
from captioner_jax.matcher import hungarian_assign_host
from captioner_jax.objective import (
    MatcherCosts,
    compute_losses,
    forward,
    losses_of_outputs,
    matching_costs,
    step_keys,
)
from data_prep.infra import distributed, paths, resume
from data_prep.infra import mesh as mesh_lib
from data_prep.infra.atomic_files import atomic_write_json
from data_prep.infra.checkpointing import Checkpointer
from data_prep.infra.loop import itstime, mesh_for_batch
from data_prep.infra.metrics import MetricWriter
from data_prep.infra.progress import Progress

log = logging.getLogger(__name__)


@dataclasses.dataclass
class _Data:
    train_videos: dict
    val_videos: dict
    train_ids: list
    val_ids: list
    vocab: object
    loader: object
    feature_dim: int
    feature_problems: int = 0  # missing / corrupt feature files (feature_problems.json)


def check_feature_coverage(loader, videos, data_cfg) -> None:
    """Stops a run in which more than `data.max_missing_fraction` of the training videos have
    no feature file: almost always a wrong feature path, which PDVC's zero filling would turn
    into a full-length training run on zeros. Raises ValueError naming the feature paths."""
    limit = float(data_cfg.get("max_missing_fraction", 0.5))
    ids = list(videos)
    missing = loader.find_missing(ids)
    if ids and len(missing) > limit * len(ids):
        where = [str(dict(s).get("path")) for s in data_cfg.features]
        raise ValueError(
            f"{len(missing)} of {len(ids)} training videos have no features in {where} (e.g. "
            f"{sorted(missing)[:3]}): check data.features (the feature path); to train on "
            f"zero-filled features anyway set data.max_missing_fraction=1.0")


def _load_data(config, workdir: str) -> _Data:
    train_videos = build.read_split(config.data.train_captions)
    vocab = build.load_vocab(config.data, train_videos)
    loader = build.feature_loader(config.data)
    check_feature_coverage(loader, train_videos, config.data)
    zero_fill = bool(config.data.zero_fill_missing)
    train_ids = build.usable_ids(loader, train_videos, workdir, zero_fill, "train")
    val_videos = build.read_split(config.data.val_captions) if config.data.val_captions else {}
    val_ids = []
    if val_videos:
        val_ids = build.usable_ids(loader, val_videos, workdir, zero_fill, "val")
        val_ids = build.video_id_table({v: None for v in val_ids},
                                       int(config.data.get("max_val_videos", 0)))
    # Every bad feature file in one report; corrupt videos left out up front (not each epoch).
    problems, corrupt = check_stage_features(
        loader, {"train": train_ids, "val": val_ids}, workdir, "captioner_train", config.data)
    train_ids = [v for v in train_ids if v not in corrupt]
    val_ids = [v for v in val_ids if v not in corrupt]
    if not train_ids:
        raise ValueError("train: no video has readable features (see feature_problems.json)")
    feature_dim = loader.load(train_ids[0]).shape[1]
    return _Data(train_videos, val_videos, train_ids, val_ids, vocab, loader, feature_dim,
                 problems)


def make_train_step(model, tx, schedule, *, mode: str, costs: MatcherCosts, weights: dict,
                    state_sharding, metric_sharding):
    """Donated jitted (state, batch, step_key, assign, forward=None) -> (state, metrics).

    `assign` [B, layers, N] int32: the matched GT event of every query per decoder layer
    (mode "queries", from `make_training_forward` + the host solver); None in GT-proposal
    mode. `forward`: the (outputs, pullback) pair `make_training_forward` returned with those
    costs: the step then does not run the forward again (its losses and the caption head's
    loop run on the outputs, and the pullback carries their gradient through the forward);
    None runs the forward in the step (GT-proposal mode). Both give the same step to float
    summation order (tests/test_captioner_train_split.py).
    """

    def train_step(state, batch, step_key, assign, forward=None):
        rng = jax.random.fold_in(step_key, state["step"])
        per_layer = None if assign is None else list(jnp.moveaxis(assign, 1, 0))
        if forward is None:
            def loss_fn(params):
                total, terms, _ = compute_losses(model, params, batch, rng, mode=mode,
                                                 costs=costs, weights=weights, train=True,
                                                 assign=per_layer)
                return total, terms

            (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        else:
            out, pullback = forward
            _, cap_rng = step_keys(rng)

            def loss_fn(params, out):
                return losses_of_outputs(model, params, out, batch, cap_rng, per_layer,
                                         costs=costs, weights=weights, train=True)

            loss, loss_pullback, terms = jax.vjp(loss_fn, state["params"], out, has_aux=True)
            grads_direct, grads_out = loss_pullback(jnp.ones_like(loss))
            grads = jax.tree.map(jnp.add, grads_direct, pullback(grads_out)[0])
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        metrics = dict(terms, loss=loss, grad_norm=optax.global_norm(grads),
                       lr=schedule(state["step"]))
        return {"params": params, "opt_state": opt_state, "step": state["step"] + 1}, metrics

    return jax.jit(train_step, donate_argnums=(0,),
                   out_shardings=(state_sharding, metric_sharding))


def make_training_forward(model, costs: MatcherCosts, batch_sharding):
    """jitted (params, batch, step_key, step) -> (costs, (outputs, pullback)): the training
    forward of `step` in mode "queries" (the dropout key the update step uses), its matching
    costs [B, layers, N, G] (batch-sharded) for the host solver, and what the update step
    needs to finish the step without running the forward again: the outputs and the
    forward's pullback (`jax.vjp`'s function, a pytree of the forward's residuals).

    PDVC runs its forward once per step and matches in between; one jitted program cannot
    stop for SciPy without a host callback (never persistently cached, see the module
    docstring), so the step is two programs, and handing the residuals over keeps the
    forward to one run: 12-14% of a batch-8 step on one core (1.71 -> 1.48 s, medians)."""

    def training_forward(params, batch, step_key, step):
        fwd_rng, _ = step_keys(jax.random.fold_in(step_key, step))
        out, pullback = jax.vjp(
            lambda p: forward(model, p, batch, "queries", True, fwd_rng), params)
        cost = jnp.moveaxis(matching_costs(out, batch, costs), 0, 1)
        return jax.lax.with_sharding_constraint(cost, batch_sharding), (out, pullback)

    return jax.jit(training_forward)


def host_assignment(cost_rows: np.ndarray, gt_valid: np.ndarray) -> np.ndarray:
    """This host's costs [b, layers, N, G] and gt_valid [b, G] -> int32 [b, layers, N]
    (SciPy's Hungarian solver, one problem per video and layer)."""
    num_gt = np.asarray(gt_valid).sum(axis=1)
    return np.stack([hungarian_assign_host(cost_rows[:, layer], num_gt)
                     for layer in range(cost_rows.shape[1])], axis=1)


def _match(training_forward, state, batch, host, step_key, mesh):
    """The assignment [B, layers, N] of this step's training forward (a global array; costs
    on the device, this host's videos solved on the host) and the forward's (outputs,
    pullback) for the update step."""
    cost, fwd = training_forward(state["params"], batch, step_key, state["step"])
    assign = mesh_lib.global_batch({"assign": host_assignment(inference.host_rows(cost, mesh),
                                                              host["gt_valid"])},
                                   mesh_lib.batch_sharding(mesh))["assign"]
    return assign, fwd


def _evaluate(step: int, *, config, model, params, data: _Data, mesh, workdir: str,
              writer: MetricWriter, best_ckpt: Checkpointer, evals: resume.EvaluationLog,
              steps_per_epoch: int) -> dict:
    """Validation at `step`: predictions/val_step<step>.json, best checkpoint and
    best_metrics.json, then the evaluation record, then the metrics line (in that order, so
    a kill anywhere in here makes the resumed run redo the whole evaluation)."""
    out_path = paths.join(workdir, "predictions", f"val_step{step}.json")
    val_metrics, _ = inference.evaluate_split(
        config, model, params, data.vocab, data.loader, data.val_videos, data.val_ids, mesh,
        out_path=out_path)
    score = inference.best_score(val_metrics)
    flat = dict(resume.metrics_line(val_metrics), epoch=step / steps_per_epoch,
                score=score)
    best = max((float(e["score"]) for e in evals.evals), default=-np.inf)
    log.info("epoch %.2f step %d: METEOR %.3f SODA_c %.3f (best before %.3f)", flat["epoch"],
             step, flat.get("METEOR", float("nan")), flat.get("SODA_c", float("nan")), best)
    if score > best:
        if step not in best_ckpt.all_steps():  # a kill after this save redoes the evaluation
            best_ckpt.save(step, {"params": params}, force=True)
            best_ckpt.wait()
        if distributed.is_main_process():
            atomic_write_json(paths.join(workdir, "best_metrics.json"),
                              {"score": score, "step": step, "metrics": flat})
    evals.record(step, flat)
    writer.write(step, flat, split="val")
    return flat


def run(config, workdir: str) -> dict:
    """Stage entry point (see the module docstring). Returns {"steps", "best_score",
    "last_val"} or, when preempted, {"steps": the checkpointed step, "preempted": True}."""
    paths.make_dirs(workdir)
    # ------------------------------------------------------------------ data
    data = _load_data(config, workdir)
    distributed.check_same_across_processes(
        {"config": build.config_fingerprint(config), "train": data.train_ids, "val": data.val_ids},
        "captioner_train config and data")

    # ------------------------------------------------------------------ mesh
    global_batch = int(config.data.batch_size)
    mesh, per_host = mesh_for_batch(config.mesh, global_batch, int(config.num_devices))
    batch_sharding = mesh_lib.batch_sharding(mesh)
    replicated = mesh_lib.replicated(mesh)

    # ------------------------------------------------------------------ model, optimizer
    steps_per_epoch = max(len(data.train_ids) // global_batch, 1)
    num_epochs = int(config.num_epochs)
    total_steps = int(config.get("total_steps", 0) or num_epochs * steps_per_epoch)
    model = build.build_model(config.model, data.vocab.size + 1)
    tx, schedule = build.build_optimizer(config.optim, steps_per_epoch, num_epochs)
    build.write_model_info(workdir, build.model_info(config, data.vocab, data.feature_dim),
                           data.vocab)
    t = int(config.data.num_steps)
    dummy = (jnp.zeros((1, t, data.feature_dim)), jnp.ones((1, t), bool), jnp.ones((1,)))

    def init_state(key):
        params = model.init({"params": key}, *dummy, method=type(model).init_all)["params"]
        return {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}

    key = jax.random.key(int(config.seed))
    init_key = jax.random.fold_in(key, 0)
    abstract = jax.eval_shape(init_state, init_key)
    shardings = mesh_lib.param_shardings(abstract, mesh, rule=str(config.get("sharding",
                                                                              "replicate")))
    log.info("PDVC: %d parameters, feature dim %d, vocabulary %d (+1), %d train videos, "
             "%d steps/epoch, %d steps", build.count_params(abstract["params"]),
             data.feature_dim, data.vocab.size, len(data.train_ids), steps_per_epoch,
             total_steps)

    # ------------------------------------------------------------------ jitted steps
    mode = str(config.mode)
    costs = MatcherCosts(**dict(config.matcher))
    weights = {k: float(v) for k, v in dict(config.loss_weights).items()}
    train_step = make_train_step(model, tx, schedule, mode=mode, costs=costs, weights=weights,
                                 state_sharding=shardings, metric_sharding=replicated)
    training_forward = (make_training_forward(model, costs, batch_sharding)
                        if mode == "queries" else None)
    # The key is an argument, not a closure constant, so runs with different seeds (ensemble
    # members) share one compiled step through the persistent compilation cache.
    # (jit, not device_put: a multi-host replicated sharding spans other hosts' devices.)
    step_key = jax.jit(lambda k: jax.random.fold_in(k, 1), out_shardings=replicated)(key)

    # ------------------------------------------------------------------ resources
    log_every = int(config.log_every_steps)
    ckpt_every = int(config.checkpoint_every_steps)
    eval_every = int(config.eval_every_epochs) * steps_per_epoch if data.val_ids else 0
    if eval_every:
        inference.prestart_evaluator(config.eval.references)
    with contextlib.ExitStack() as stack:
        ckpt, best_ckpt, writer, guard, window = resume.enter_resources(
            stack, workdir, config.keep_checkpoints, best=True, close=data.loader.close)
        train_iter = build.train_iterator(config, data.train_ids, data.train_videos,
                                          data.loader, data.vocab, per_host)

        # -------------------------------------------------------------- restore or init
        state, start = resume.restore_or_init(
            ckpt, window, writer, abstract, shardings,
            lambda: jax.jit(init_state, out_shardings=shardings)(init_key), train_iter)
        evals = resume.EvaluationLog(paths.join(workdir, "evaluations.json"))

        evaluate = functools.partial(
            _evaluate, config=config, model=model, data=data, mesh=mesh, workdir=workdir,
            writer=writer, best_ckpt=best_ckpt, evals=evals, steps_per_epoch=steps_per_epoch)

        # -------------------------------------------------------------- undone evaluation
        if start and itstime(start, eval_every, total_steps) and eval_every:
            if evals.done(start):
                resume.restore_eval_line(writer, evals, start)
            else:
                log.info("the evaluation of step %d did not complete: running it", start)
                evaluate(start, params=state["params"])

        # -------------------------------------------------------------- loop
        progress = Progress(total_steps, items_per_step=global_batch, desc="captioner",
                            item_name="videos")
        for step in range(start + 1, total_steps + 1):
            host = next(train_iter)
            batch = mesh_lib.global_batch(host, batch_sharding)
            assign = fwd = None
            if training_forward is not None:  # mode "queries": Hungarian matching on the host
                assign, fwd = _match(training_forward, state, batch, host, step_key, mesh)
            state, metrics = train_step(state, batch, step_key, assign, fwd)
            del fwd  # the forward's residuals: free them before the next step's
            window.add(metrics)
            if itstime(step, log_every, total_steps):
                logged = window.flush(step)
                writer.write(step, dict(logged, **progress.rates(step)))
                progress.show(logged)
            progress.update(step)
            resume.save_checkpoint(ckpt, window, step, state, train_iter, ckpt_every)
            if guard.should_stop(step):
                resume.save_checkpoint(ckpt, window, step, state, train_iter, ckpt_every,
                                            force=True)
                log.warning("preempted: stopped after the checkpoint of step %d", step)
                return {"steps": step, "preempted": True}
            if eval_every and itstime(step, eval_every, total_steps):
                evaluate(step, params=state["params"])
        resume.save_checkpoint(ckpt, window, total_steps, state, train_iter, ckpt_every,
                                    force=True)

    last = evals.evals[-1] if evals.evals else {}
    best = max((float(e["score"]) for e in evals.evals), default=-np.inf)
    return {"steps": total_steps, "best_score": best, "feature_problems": data.feature_problems,
            "last_val": {k: v for k, v in last.items() if k not in ("step", "score")}}
