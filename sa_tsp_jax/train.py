"""SA-TSP pretraining of the R(2+1)D encoder (stage "sa_tsp_train"), big_vision style.

`run(config, workdir)` is one function in sections: setup, mesh, input, model + optimizer,
shardings + init, update step, checkpoint/resume, loop, export. The objective is
`L = L_action + alpha * L_temporal + beta * L_semantic` (sa_tsp_jax/losses): beta = 0 gives
TSP, alpha = beta = 0 action-only pretraining.

Data parallel by default (`config.mesh = [("data", -1)]`); `config.sharding = "fsdp"`
with an "fsdp" mesh axis shards parameters and optimizer state (ZeRO-3 style). Batch-norm
statistics are global over the batch (see models/batch_norm.py). Multi-host: every process
runs `run` with the same config (checked), reads its slice of the training clips (the Grain
pipeline's per-host slice) and feeds it with `make_array_from_process_local_data`.

Outputs in `workdir` (local or `gs://`): checkpoints/ (Orbax: train state + Grain iterator +
the open metric window, automatic resume), metrics.jsonl (+ TensorBoard, process 0), and the
final `params/` export for feature extraction (sa_tsp_jax/export.py: variables and the input
geometry the encoder was trained on).

metrics.jsonl: a "train" line every `log_every_steps` steps (and at the last step) whose
values ("loss", its terms, accuracies, grad_norm) are the MEAN over the steps of that logging
window, plus `lr_backbone` (at the window's last step) and rates; a "val" line at every
evaluation. Resume is exact for this file too: the steps of a window that a stop cut short
are saved beside the checkpoint (`metric_windows/<step>.json`, data_prep/infra/resume.py, the
same mechanism as the captioner trainers) and completed after the restart, and lines past
the restored step are dropped, so a stopped-and-resumed run's file equals an uninterrupted
run's except the "time" and rate fields (the window's size is `log_every_steps`, so that
key must stay the same across a resume). The order within a step is: update, log line,
evaluation, checkpoint; a kill before the checkpoint of step S therefore redoes the
evaluation of S on resume.

Stops: on SIGTERM (preemption; `data_prep.infra.preemption`) or after `max_steps_this_run`
steps the run saves a checkpoint of the current step and returns with "preempted" /
"stopped_early" set; rerunning the same command continues exactly.
"""
from __future__ import annotations

import contextlib
import logging
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils

from data_prep.infra import distributed, loop, paths, resume
from data_prep.infra import mesh as mesh_lib
from data_prep.infra.progress import Progress
from data_prep.pipelines.source import ClipShardSource
from data_prep.pipelines.tsp_pipeline import SegmentClipTable, TspInputConfig, tsp_train_dataset
from data_prep.text.concepts import ConceptVocab
from sa_tsp_jax import export, import_torch, optim
from sa_tsp_jax.eval_metrics import MetricAccumulator
from sa_tsp_jax.gvf import GvfTable
from sa_tsp_jax.losses.pretrain_loss import PretrainLossConfig, pretrain_loss
from sa_tsp_jax.models.heads import SATSPModel
from sa_tsp_jax.models.r2plus1d import make_backbone
from sa_tsp_jax.shards_spec import resolve_shards, shard_sizes

log = logging.getLogger(__name__)
_BATCH_KEYS = ("clips", "action_label", "region_label", "concepts", "valid", "gvf")


# ----------------------------------------------------------------------------- helpers
def build_model(config) -> SATSPModel:
    """The SA-TSP model named by `config.model` (no ConfigDict enters the module)."""
    m = config.model
    backbone = make_backbone(m.variant, m.midplane_rule, export.DTYPES[m.dtype],
                             remat=m.remat)
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


def device_batch(host_batch: dict, sharding) -> dict:
    """This host's numpy batch (with "gvf" when the pipeline joined it) -> global jax arrays."""
    batch = {k: v for k, v in host_batch.items() if k in _BATCH_KEYS}
    return mesh_lib.global_batch(batch, sharding)


def host_rows(tree, mesh):
    """Batch-sharded global arrays -> numpy rows of THIS host's slice (what its host batch
    held), so outputs line up with the host's labels before both are gathered."""
    if jax.process_count() == 1:
        return jax.tree.map(np.asarray, tree)
    spec = mesh_lib.batch_sharding(mesh).spec
    local = multihost_utils.global_array_to_host_local_array(tree, mesh, spec)
    return jax.tree.map(np.asarray, local)


def evaluate(eval_step, state, val_source: ClipShardSource, input_cfg: TspInputConfig,
             gvf_table: GvfTable | None, mesh, *, seed: int, max_batches: int,
             concept_threshold: float) -> dict[str, float]:
    """Runs the validation pipeline once (padded batches, every host its slice; at most
    `max_batches` batches when > 0) and returns the metric dict of all hosts' clips."""
    ds = tsp_train_dataset(val_source, input_cfg, seed=seed, train=False, num_epochs=1,
                           gvf_lookup=gvf_table.lookup if gvf_table else None)
    sharding = mesh_lib.batch_sharding(mesh)
    acc = MetricAccumulator(concept_threshold)
    for i, host_batch in enumerate(ds):
        if max_batches and i >= max_batches:
            break
        outputs = host_rows(eval_step(state, device_batch(host_batch, sharding)),
                            mesh)
        labels = {k: host_batch[k] for k in ("action_label", "region_label", "valid",
                                             "concepts") if k in host_batch}
        gathered = distributed.to_host({"outputs": outputs, "labels": labels})
        acc.add(gathered["outputs"], gathered["labels"])
    return acc.result()


def export_params(workdir: str, state, model: SATSPModel, input_cfg: TspInputConfig) -> str:
    """Writes params + batch_stats, the backbone config and the input geometry to
    `workdir/params` (sa_tsp_jax/export.py; every process calls it, Orbax's save is
    collective and process 0 writes). Returns the folder."""
    variables = distributed.to_host(
        {"params": state["params"], "batch_stats": state["batch_stats"]})
    b = model.backbone
    cfg = dict(stage_sizes=list(b.stage_sizes), widths=list(b.widths),
               stem_width=b.stem_width, midplane_rule=b.midplane_rule)
    geometry = export.InputGeometry(
        clip_length=input_cfg.clip_length, fps=input_cfg.fps, resize=tuple(input_cfg.resize),
        crop=input_cfg.crop, mean=tuple(input_cfg.mean), std=tuple(input_cfg.std))
    out_dir = paths.join(workdir, "params")
    export.save_variables(out_dir, variables, cfg, geometry)
    return out_dir


# ----------------------------------------------------------------------------- main
def run(config, workdir: str) -> dict:
    """Trains the encoder; returns {"step", "train_<metric>"..., "val_<metric>"...} and
    "preempted" / "stopped_early" = True when it stopped before `total_steps`."""
    # --- Setup: the same config on every process (`run` holds per-process ids), PRNG key.
    distributed.check_same_across_processes(
        {k: v for k, v in config.to_dict().items() if k != "run"}, "the sa_tsp_train config")
    # "rbg" compiles much faster than threefry on CPU (the init draws ~100 kernels).
    rng = jax.random.key(config.seed, impl=config.rng_impl)
    log_every = int(config.log_every_steps)
    if log_every < 1:
        raise ValueError(f"log_every_steps must be >= 1, got {log_every}")

    # --- Mesh (checked against the global batch and the number of hosts).
    global_bs = int(config.data.batch_size)
    mesh, per_host_bs = loop.mesh_for_batch(config.mesh, global_bs)
    batch_sharding = mesh_lib.batch_sharding(mesh)

    # --- Input: each host reads its slice (TspInputConfig.batch_size is per host).
    if config.data.concept_vocab:
        # The concept head is as wide as the text stage's vocabulary, whatever its top-N gave.
        config.input.num_concepts = ConceptVocab.load(config.data.concept_vocab).size
    input_cfg = TspInputConfig.from_mapping({**dict(config.input), "batch_size": per_host_bs})
    train_paths = resolve_shards(config.data.train_shards)
    val_paths = resolve_shards(config.data.val_shards) if config.data.val_shards else []
    distributed.check_same_across_processes(shard_sizes(train_paths + val_paths),
                                            "the training and validation shard lists")
    train_source = ClipShardSource(train_paths)
    val_source = ClipShardSource(val_paths) if val_paths else None
    table = SegmentClipTable(train_source, input_cfg.clip_length, input_cfg.fps,
                             input_cfg.clips_per_segment)
    steps_per_epoch = max(1, len(table) // global_bs)
    total_steps = int(config.total_steps or round(config.num_epochs * steps_per_epoch))
    gvf_table = GvfTable(config.gvf_path) if config.model.use_gvf else None
    gvf_dim = gvf_table.dim if gvf_table else 0
    train_iter = iter(tsp_train_dataset(
        train_source, input_cfg, seed=config.seed, train=True, table=table,
        gvf_lookup=gvf_table.lookup if gvf_table else None))
    log.info("train: %d clips/epoch, %d steps/epoch, %d steps, global batch %d",
             len(table), steps_per_epoch, total_steps, global_bs)

    # --- Model and optimizer.
    model = build_model(config)
    optim_cfg = optim.OptimConfig.from_mapping(config.optim)
    tx = optim.make_optimizer(optim_cfg, steps_per_epoch)
    clip_shape = (input_cfg.clip_length, input_cfg.crop, input_cfg.crop, 3)
    init = init_state_fn(model, tx, clip_shape, gvf_dim)

    # --- Shardings and initialisation on abstract shapes first.
    state, abstract, state_shardings = init_state(init, rng, mesh, config.sharding)
    if config.init_from:
        imported, _ = export.load_variables(config.init_from)
        host = distributed.to_host({"params": state["params"],
                                    "batch_stats": state["batch_stats"]})
        merged, skipped = import_torch.merge_into(host, imported)
        for s in skipped:
            log.info("init_from %s: kept fresh init for %s", config.init_from, s)
        state = jax.device_put({**state, **merged}, state_shardings)
        state["opt_state"] = jax.jit(tx.init, out_shardings=state_shardings["opt_state"])(
            state["params"])

    # --- Update and eval steps.
    train_step, eval_step = jit_steps(model, tx, loss_config(config), mesh, state_shardings)

    eval_every = int(config.eval_every_steps or steps_per_epoch)
    progress = Progress(total_steps, items_per_step=global_bs, desc="sa_tsp_train",
                        item_name="clips", log_every_s=config.progress_every_s)
    last_train, last_eval, stop = {}, {}, None
    t0 = time.time()
    with contextlib.ExitStack() as stack:
        # --- Checkpoint / automatic resume (train state, Grain iterator, open metric window).
        ckpt, _, writer, guard, window = resume.enter_resources(
            stack, workdir, config.keep_checkpoints)
        state, start = resume.restore_or_init(ckpt, window, writer, abstract, state_shardings,
                                              lambda: state, train_iter)

        # --- Loop: update, log line, evaluation, checkpoint, stop requests.
        step = start
        for step in range(start + 1, total_steps + 1):
            with jax.profiler.StepTraceAnnotation("train", step_num=step):
                host_batch = next(train_iter)
                state, metrics = train_step(state, device_batch(host_batch, batch_sharding))
            window.add(metrics)
            if loop.itstime(step, log_every, total_steps):
                last_train = window.flush(step)
                factor = optim.lr_factor_reference(step - 1, steps_per_epoch, optim_cfg)
                last_train["lr_backbone"] = config.optim.backbone_lr * factor
                writer.write(step, {**last_train, **progress.rates(step)}, "train")
                progress.show(last_train)
            progress.update(step)
            if val_source is not None and loop.itstime(step, eval_every, total_steps):
                last_eval = evaluate(eval_step, state, val_source, input_cfg, gvf_table, mesh,
                                     seed=config.seed, max_batches=config.max_eval_batches,
                                     concept_threshold=config.concept_threshold)
                writer.write(step, last_eval, "val")
                log.info("step %d validation: %s", step, last_eval)
            if step < total_steps and guard.should_stop(step):  # same answer on every host
                stop = "preempted"
            elif (config.max_steps_this_run and step - start >= config.max_steps_this_run
                  and step < total_steps):
                stop = "stopped_early"
            resume.save_checkpoint(ckpt, window, step, state, train_iter,
                                   int(config.checkpoint_every_steps),
                                   force=bool(stop) or step == total_steps)
            if stop:
                log.info("stopping at step %d (%s); rerun the same command to continue",
                         step, stop)
                break
        ckpt.wait()

        # --- Export for feature extraction (only when training finished).
        if stop is None:
            export_params(workdir, state, model, input_cfg)
    log.info("trained %d steps in %.1f s", step - start, time.time() - t0)
    result = {"step": step, **{f"train_{k}": v for k, v in last_train.items()},
              **{f"val_{k}": v for k, v in last_eval.items()}}
    if stop:
        result[stop] = True
    return result
