"""Stage "captioner_train": cross-entropy training of the PDVC captioner (big_vision style).

  python launch.py --config configs/captioner/synthetic.py --workdir DIR

Sections: data (captions, vocabulary, features; missing features reported) -> mesh ->
model and abstract init -> jit(init, out_shardings) -> donated jitted update step (forward,
per-layer Hungarian matching on the host, PDVC's losses, Adam + L2 decay + grad clipping,
PDVC's step schedule) -> Orbax checkpoint of {params, opt_state, step} + Grain iterator,
automatic resume -> loop with metrics (JSON lines / TensorBoard), progress + ETA, NaN guard
-> evaluation every `eval_every_epochs` (official metrics on the validation split), keeping the
best parameters by METEOR + SODA_c (PDVC's "dvc" criterion) in DIR/best.
"""
from __future__ import annotations

import json
import logging
import math
import os

import jax
import jax.numpy as jnp
import optax

from captioner_jax import build, inference
from captioner_jax.objective import MatcherCosts, compute_losses
from data_prep.infra.atomic_files import atomic_write_json
from data_prep.infra import mesh as mesh_lib
from data_prep.infra.checkpointing import Checkpointer
from data_prep.infra.metrics import MetricWriter
from data_prep.infra.progress import Progress, check_finite

log = logging.getLogger(__name__)


def _train_ids(loader, videos, workdir, zero_fill: bool, what: str) -> list[str]:
    ids = list(videos)
    missing = loader.find_missing(ids)
    if missing:
        atomic_write_json(os.path.join(workdir, f"missing_features_{what}.json"), missing)
        log.warning("%s: %d of %d videos miss feature files (%s); %s", what, len(missing),
                    len(ids), os.path.join(workdir, f"missing_features_{what}.json"),
                    "zero-filled" if zero_fill else "left out")
        if not zero_fill:
            ids = [v for v in ids if v not in missing]
    if not ids:
        raise ValueError(f"{what}: no video has features")
    return ids


def run(config, workdir: str) -> dict:
    os.makedirs(workdir, exist_ok=True)
    # ------------------------------------------------------------------ data
    train_videos = build.read_split(config.data.train_captions)
    vocab = build.load_vocab(config.data, train_videos)
    vocab.save(os.path.join(workdir, "vocab.json"))
    loader = build.feature_loader(config.data)
    zero_fill = bool(config.data.zero_fill_missing)
    train_ids = _train_ids(loader, train_videos, workdir, zero_fill, "train")
    val_videos = build.read_split(config.data.val_captions) if config.data.val_captions else {}
    val_ids = []
    if val_videos:
        val_ids = _train_ids(loader, val_videos, workdir, zero_fill, "val")
        val_ids = build.video_id_table({v: None for v in val_ids},
                                       int(config.data.get("max_val_videos", 0)))
    feature_dim = loader.load(train_ids[0]).shape[1]

    # ------------------------------------------------------------------ mesh, model, state
    mesh = build.make_mesh(config)
    global_batch = int(config.data.batch_size)
    if global_batch % jax.process_count():
        raise ValueError(f"batch {global_batch} not divisible by {jax.process_count()} hosts")
    per_host = global_batch // jax.process_count()
    steps_per_epoch = max(len(train_ids) // global_batch, 1)
    num_epochs = int(config.num_epochs)
    total_steps = int(config.get("total_steps", 0) or num_epochs * steps_per_epoch)
    model = build.build_model(config.model, vocab.size + 1)
    tx, schedule = build.build_optimizer(config.optim, steps_per_epoch, num_epochs)
    t = int(config.data.num_steps)
    dummy = (jnp.zeros((1, t, feature_dim)), jnp.ones((1, t), bool), jnp.ones((1,)))

    def init_state(key):
        params = model.init({"params": key}, *dummy, method=type(model).init_all)["params"]
        return {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}

    key = jax.random.PRNGKey(int(config.seed))
    abstract = jax.eval_shape(init_state, jax.random.fold_in(key, 0))
    rule = str(config.get("sharding", "replicate"))
    shardings = mesh_lib.param_shardings(abstract, mesh, rule=rule)
    state = jax.jit(init_state, out_shardings=shardings)(jax.random.fold_in(key, 0))
    log.info("PDVC: %d parameters, feature dim %d, vocabulary %d (+1), %d train videos, "
             "%d steps/epoch, %d steps", build.count_params(abstract["params"]), feature_dim,
             vocab.size, len(train_ids), steps_per_epoch, total_steps)

    # ------------------------------------------------------------------ update step
    mode = str(config.mode)
    costs = MatcherCosts(**dict(config.matcher))
    weights = {k: float(v) for k, v in dict(config.loss_weights).items()}
    # The key is an argument, not a closure constant, so runs with different seeds (ensemble
    # members) share one compiled step through the persistent compilation cache.
    step_key = jax.device_put(jax.random.fold_in(key, 1), mesh_lib.replicated(mesh))

    def train_step(state, batch, step_key):
        rng = jax.random.fold_in(step_key, state["step"])

        def loss_fn(params):
            total, terms, _ = compute_losses(model, params, batch, rng, mode=mode, costs=costs,
                                             weights=weights, train=True)
            return total, terms

        (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        metrics = dict(terms, loss=loss, grad_norm=optax.global_norm(grads),
                       lr=schedule(state["step"]))
        return {"params": params, "opt_state": opt_state, "step": state["step"] + 1}, metrics

    train_step = jax.jit(train_step, donate_argnums=(0,),
                         out_shardings=(shardings, mesh_lib.replicated(mesh)))
    batch_sharding = mesh_lib.batch_sharding(mesh)

    # ------------------------------------------------------------------ input, checkpoints
    train_iter, ckpt, restored, start = build.resumable_training_input(
        config, workdir, train_ids, train_videos, loader, vocab, per_host, abstract, shardings)
    if restored is not None:
        state = restored
        log.info("resumed from step %d", start)
    best_ckpt = Checkpointer(os.path.join(workdir, "best"), max_to_keep=1)
    best_path = os.path.join(workdir, "best_metrics.json")
    best = -math.inf
    if os.path.isfile(best_path):
        with open(best_path) as f:
            best = float(json.load(f)["score"])

    # ------------------------------------------------------------------ loop
    writer = MetricWriter(workdir)
    progress = Progress(total_steps, items_per_step=global_batch, desc="captioner",
                        item_name="videos")
    eval_every = int(config.eval_every_epochs) * steps_per_epoch
    log_every = int(config.log_every_steps)
    last_val = {}
    for step in range(start + 1, total_steps + 1):
        host = next(train_iter)
        batch = mesh_lib.global_batch(host, batch_sharding)
        state, metrics = train_step(state, batch, step_key)
        if step % log_every == 0 or step == total_steps or step == start + 1:
            metrics = jax.device_get(metrics)
            check_finite(metrics["loss"], step)
            metrics.update(progress.rates(step))
            writer.write(step, metrics)
        progress.update(step)
        ckpt.save(step, state, train_iter)
        if val_ids and eval_every > 0 and (step % eval_every == 0 or step == total_steps):
            epoch = step / steps_per_epoch
            out_path = os.path.join(workdir, "predictions", f"val_step{step}.json")
            os.makedirs(os.path.dirname(out_path), exist_ok=True)
            val_metrics, _ = inference.evaluate_split(
                config, model, state["params"], vocab, loader, val_videos, val_ids, mesh,
                out_path=out_path)
            flat = {k: v for k, v in val_metrics.items() if isinstance(v, int | float)}
            writer.write(step, dict(flat, epoch=epoch), split="val")
            last_val = flat
            score = inference.best_score(val_metrics)
            log.info("epoch %.2f step %d: METEOR %.3f SODA_c %.3f (best so far %.3f)", epoch,
                     step, flat.get("METEOR", float("nan")), flat.get("SODA_c", float("nan")),
                     best)
            if score > best:
                best = score
                best_ckpt.save(step, {"params": state["params"]}, force=True)
                best_ckpt.wait()
                atomic_write_json(best_path, {"score": score, "step": step, "metrics": flat})
    if ckpt.latest_step() != total_steps:
        ckpt.save(total_steps, state, train_iter, force=True)
    ckpt.close()
    best_ckpt.close()
    writer.close()
    return {"steps": total_steps, "best_score": best, "last_val": last_val}
