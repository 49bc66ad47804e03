"""SA-TSP pretraining of the R(2+1)D encoder (stage "sa_tsp_train"), big_vision style.

`run(config, workdir)` is one function in sections: setup, mesh, input, model, optimizer,
shardings + init, update step, checkpoint/resume, evaluation, loop. The objective is
`L = L_action + alpha * L_temporal + beta * L_semantic` (sa_tsp_jax/losses): beta = 0 gives
TSP, alpha = beta = 0 action-only pretraining.

Data parallel by default (`config.mesh = [("data", -1)]`); `config.sharding = "fsdp"`
with an "fsdp" mesh axis shards parameters and optimizer state (ZeRO-3 style). Batch-norm
statistics are global over the batch (see models/batch_norm.py).

Outputs in `workdir`: checkpoints/ (Orbax: train state + Grain iterator, automatic resume),
metrics.jsonl (+ TensorBoard), and the final `params/` export for feature extraction.
"""
from __future__ import annotations

import glob
import logging
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils

from data_prep.infra import checkpointing
from data_prep.infra import mesh as mesh_lib
from data_prep.infra import metrics as metrics_lib
from data_prep.infra.progress import Progress, check_finite
from data_prep.pipelines.source import ClipShardSource
from data_prep.pipelines.tsp_pipeline import SegmentClipTable, TspInputConfig, tsp_train_dataset
from data_prep.text.concepts import ConceptVocab
from sa_tsp_jax import optim
from sa_tsp_jax.eval_metrics import MetricAccumulator
from sa_tsp_jax.gvf import GvfTable
from sa_tsp_jax.losses.pretrain_loss import PretrainLossConfig, pretrain_loss
from sa_tsp_jax.models.heads import SATSPModel
from sa_tsp_jax.models.r2plus1d import make_backbone

log = logging.getLogger(__name__)
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


# ----------------------------------------------------------------------------- helpers
def resolve_shards(spec) -> list[str]:
    """A glob pattern, a comma-separated list or a list of paths -> sorted existing files."""
    items = [spec] if isinstance(spec, str) else list(spec)
    paths = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if part:
                matched = sorted(glob.glob(part))
                if not matched:
                    raise FileNotFoundError(f"no shard matches {part!r}")
                paths.extend(matched)
    if not paths:
        raise FileNotFoundError(f"no shards given ({spec!r})")
    return paths


def build_model(config) -> SATSPModel:
    """The SA-TSP model named by `config.model` (no ConfigDict enters the module)."""
    m = config.model
    backbone = make_backbone(m.variant, m.midplane_rule, DTYPES[m.dtype])
    num_concepts = int(config.input.num_concepts) if config.loss.beta > 0 else 0
    return SATSPModel(backbone, num_actions=int(m.num_actions), num_regions=2,
                      num_concepts=num_concepts, use_gvf=bool(m.use_gvf))


def loss_config(config) -> PretrainLossConfig:
    return PretrainLossConfig(**dict(config.loss))


def init_state_fn(model, tx, clip_shape, gvf_dim):
    """rng -> train state {params, batch_stats, opt_state, step} (for eval_shape and jit)."""

    def init(rng):
        clips = jnp.zeros((1, *clip_shape), jnp.float32)
        gvf = jnp.zeros((1, gvf_dim), jnp.float32) if model.use_gvf else None
        variables = model.init(rng, clips, gvf, train=False)
        params = variables["params"]
        return {"params": params, "batch_stats": variables["batch_stats"],
                "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}

    return init


def make_train_step(model, tx, loss_cfg: PretrainLossConfig):
    """(state, batch) -> (state, metrics). batch: clips, action_label, region_label,
    concepts, [gvf], [valid]; all leading dims = global batch."""

    def step(state, batch):
        def loss_fn(params):
            outputs, updates = model.apply(
                {"params": params, "batch_stats": state["batch_stats"]}, batch["clips"],
                batch.get("gvf"), train=True, mutable=["batch_stats"])
            loss, terms = pretrain_loss(outputs, batch, loss_cfg)
            return loss, (terms, updates["batch_stats"], outputs)

        (_, (terms, batch_stats, outputs)), grads = jax.value_and_grad(
            loss_fn, has_aux=True)(state["params"])
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        metrics = dict(terms)
        metrics["grad_norm"] = optax.global_norm(grads)
        if "action_logits" in outputs:
            fg = batch["action_label"] >= 0
            hit = (outputs["action_logits"].argmax(-1) == batch["action_label"]) & fg
            metrics["action_accuracy"] = hit.sum() / jnp.maximum(fg.sum(), 1)
        if "region_logits" in outputs:
            metrics["region_accuracy"] = jnp.mean(
                outputs["region_logits"].argmax(-1) == batch["region_label"])
        new_state = {"params": params, "batch_stats": batch_stats, "opt_state": opt_state,
                     "step": state["step"] + 1}
        return new_state, metrics

    return step


def make_eval_step(model):
    def step(state, batch):
        out = model.apply({"params": state["params"], "batch_stats": state["batch_stats"]},
                          batch["clips"], batch.get("gvf"), train=False)
        out.pop("features")
        return out

    return step


def jit_steps(model, tx, loss_cfg: PretrainLossConfig, mesh, state_shardings):
    """The jitted, donated train step and the eval step over `mesh` (shared with tests, so a
    test compiles exactly what `run` compiles)."""
    batch_sharding = mesh_lib.batch_sharding(mesh)
    train_step = jax.jit(make_train_step(model, tx, loss_cfg), donate_argnums=(0,),
                         in_shardings=(state_shardings, batch_sharding),
                         out_shardings=(state_shardings, mesh_lib.replicated(mesh)))
    eval_step = jax.jit(make_eval_step(model), in_shardings=(state_shardings, batch_sharding),
                        out_shardings=batch_sharding)
    return train_step, eval_step


def init_state(init, rng, mesh, rule: str = "replicate"):
    """Abstract init (eval_shape) -> shardings -> jit(init, out_shardings). Returns
    (state, abstract state, state shardings)."""
    abstract = jax.eval_shape(init, rng)
    shardings = mesh_lib.param_shardings(abstract, mesh, rule)
    return jax.jit(init, out_shardings=shardings)(rng), abstract, shardings


def to_host(tree):
    if jax.process_count() > 1:
        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree.map(np.asarray, tree)


def device_batch(host_batch: dict, gvf_table: GvfTable | None, sharding) -> dict:
    """Host numpy batch (+ GVF looked up by video id) -> global jax arrays."""
    batch = {k: v for k, v in host_batch.items()
             if k in ("clips", "action_label", "region_label", "concepts", "valid")}
    if gvf_table is not None:
        batch["gvf"] = gvf_table.lookup(host_batch["video_id"])
    return mesh_lib.global_batch(batch, sharding)


def evaluate(eval_step, state, config, input_cfg, gvf_table, sharding) -> dict[str, float]:
    """Runs the validation pipeline once (padded batches) and returns the metric dict."""
    ds = tsp_train_dataset(resolve_shards(config.data.val_shards), input_cfg,
                           seed=config.seed, train=False, num_epochs=1)
    acc = MetricAccumulator(config.get("concept_threshold", 0.5))
    for i, host_batch in enumerate(ds):
        if config.get("max_eval_batches") and i >= config.max_eval_batches:
            break
        outputs = to_host(eval_step(state, device_batch(host_batch, gvf_table, sharding)))
        labels = {k: host_batch[k] for k in ("action_label", "region_label", "valid",
                                             "concepts") if k in host_batch}
        if jax.process_count() > 1:
            labels = multihost_utils.process_allgather(labels, tiled=True)
        acc.add(outputs, labels)
    return acc.result()


# ----------------------------------------------------------------------------- main
def run(config, workdir: str) -> dict:
    """Trains the encoder; returns the final train/validation metrics."""
    # --- Setup.
    os.makedirs(workdir, exist_ok=True)
    # "rbg" compiles much faster than threefry on CPU (the init draws ~100 kernels).
    rng = jax.random.key(config.seed, impl=config.get("rng_impl", "threefry2x32"))

    # --- Mesh.
    mesh = mesh_lib.make_mesh([tuple(a) for a in config.mesh])
    batch_sharding = mesh_lib.batch_sharding(mesh)
    num_data = int(np.prod([mesh.shape[a] for a in mesh_lib.data_axes(mesh)]))
    global_bs = int(config.data.batch_size)
    if global_bs % num_data or global_bs % jax.process_count():
        raise ValueError(f"global batch {global_bs} not divisible by {num_data} data shards "
                         f"and {jax.process_count()} hosts")

    # --- Input (each host reads its slice; batch_size below is per host).
    if config.data.get("concept_vocab"):
        # The concept head is as wide as the text stage's vocabulary, whatever its top-N gave.
        config.input.num_concepts = ConceptVocab.load(config.data.concept_vocab).size
    input_cfg = TspInputConfig.from_mapping(
        {**dict(config.input), "batch_size": global_bs // jax.process_count()})
    train_source = ClipShardSource(resolve_shards(config.data.train_shards))
    table = SegmentClipTable(train_source, input_cfg.clip_length, input_cfg.fps,
                             input_cfg.clips_per_segment)
    steps_per_epoch = max(1, len(table) // global_bs)
    total_steps = int(config.get("total_steps") or round(config.num_epochs * steps_per_epoch))
    train_ds = tsp_train_dataset(train_source, input_cfg, seed=config.seed, train=True)
    train_iter = iter(train_ds)
    gvf_table = GvfTable(config.gvf_path) if config.model.use_gvf else None
    log.info("train: %d clips/epoch, %d steps/epoch, %d steps, global batch %d",
             len(table), steps_per_epoch, total_steps, global_bs)

    # --- Model and optimizer.
    model = build_model(config)
    tx = optim.make_optimizer(optim.OptimConfig.from_mapping(config.optim), steps_per_epoch)
    clip_shape = (input_cfg.clip_length, input_cfg.crop, input_cfg.crop, 3)
    init = init_state_fn(model, tx, clip_shape, gvf_table.dim if gvf_table else 0)

    # --- Shardings and initialisation on abstract shapes first.
    state, abstract, state_shardings = init_state(init, rng, mesh,
                                                  config.get("sharding", "replicate"))
    if config.get("init_from"):
        from sa_tsp_jax import import_torch

        imported, _ = import_torch.load_variables(config.init_from)
        host = jax.device_get({"params": state["params"], "batch_stats": state["batch_stats"]})
        merged, skipped = import_torch.merge_into(host, imported)
        for s in skipped:
            log.info("init_from %s: kept fresh init for %s", config.init_from, s)
        state = jax.device_put({**state, **merged}, state_shardings)
        state["opt_state"] = jax.jit(tx.init, out_shardings=state_shardings["opt_state"])(
            state["params"])

    # --- Update and eval steps.
    train_step, eval_step = jit_steps(model, tx, loss_config(config), mesh, state_shardings)

    # --- Checkpoint / automatic resume (train state and the Grain iterator together).
    ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"),
                                      max_to_keep=config.get("keep_checkpoints", 3),
                                      save_every_steps=config.checkpoint_every_steps)
    restored, start = ckpt.restore_latest(abstract, state_shardings, data_iterator=train_iter)
    if restored is not None:
        state = restored
        log.info("resumed from step %d", start)

    # --- Loop.
    writer = metrics_lib.MetricWriter(workdir)
    progress = Progress(total_steps, items_per_step=global_bs, desc="sa_tsp_train",
                        item_name="clips", log_every_s=config.get("progress_every_s", 10))
    eval_every = int(config.get("eval_every_steps") or steps_per_epoch)
    max_this_run = config.get("max_steps_this_run")
    pending, last_train, last_eval = [], {}, {}
    step = start
    t0 = time.time()
    try:
        for step in range(start + 1, total_steps + 1):
            with jax.profiler.StepTraceAnnotation("train", step_num=step):
                host_batch = next(train_iter)
                state, metrics = train_step(state, device_batch(host_batch, gvf_table,
                                                                batch_sharding))
            pending.append(metrics)
            if step % config.log_every_steps == 0 or step == total_steps:
                host = jax.device_get(pending)
                pending = []
                last_train = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
                check_finite(last_train["loss"], step)
                factor = optim.lr_factor_reference(step - 1, steps_per_epoch,
                                                   optim.OptimConfig.from_mapping(config.optim))
                last_train["lr_backbone"] = config.optim.backbone_lr * factor
                last_train.update(progress.rates(step))
                writer.write(step, last_train, "train")
            progress.update(step)
            ckpt.save(step, state, data_iterator=train_iter)
            if config.data.get("val_shards") and (step % eval_every == 0 or step == total_steps):
                last_eval = evaluate(eval_step, state, config, input_cfg, gvf_table,
                                     batch_sharding)
                writer.write(step, last_eval, "val")
                log.info("step %d validation: %s", step, last_eval)
            if max_this_run and step - start >= max_this_run and step < total_steps:
                log.info("stopping after %d steps in this run (max_steps_this_run)", step - start)
                if ckpt.latest_step() != step:
                    ckpt.save(step, state, data_iterator=train_iter, force=True)
                return {"step": step, "stopped_early": True, **last_train}
        if pending:  # NaN guard even when the last step was not a logging step
            for m in jax.device_get(pending):
                check_finite(m["loss"], step)
        if ckpt.latest_step() != step:
            ckpt.save(step, state, data_iterator=train_iter, force=True)
        ckpt.wait()
        export_params(workdir, state, model, config)
    finally:
        ckpt.close()
        writer.close()
    log.info("trained %d steps in %.1f s", step - start, time.time() - t0)
    return {"step": step, **{f"train_{k}": v for k, v in last_train.items()},
            **{f"val_{k}": v for k, v in last_eval.items()}}


def export_params(workdir: str, state, model: SATSPModel, config) -> None:
    """Writes params + batch_stats and the backbone config for extraction (`workdir/params`)."""
    from sa_tsp_jax import import_torch

    if jax.process_index() != 0:
        return
    variables = jax.device_get({"params": state["params"], "batch_stats": state["batch_stats"]})
    b = model.backbone
    cfg = dict(stage_sizes=list(b.stage_sizes), widths=list(b.widths),
               stem_width=b.stem_width, midplane_rule=b.midplane_rule)
    import_torch.save_variables(os.path.join(workdir, "params"), variables, cfg)
