"""Stage "captioner_scst": self-critical fine-tuning of a trained PDVC captioner.

  python launch.py --config configs/captioner/synthetic_scst.py:root=DATA,init=XE_WORKDIR \
      --workdir DIR

Sections (big_vision style, the same infrastructure as the XE trainer): data (train captions,
optionally + a held-out ~80% of the validation videos as the SA-TSP report did, the rest kept
for evaluation; vocabulary of the XE run) -> mesh -> model, params of the XE run's best (else
latest) checkpoint -> trainable subset (caption head by default) -> jitted sampler (K samples
+ greedy per GT event in one call) and donated jitted update -> rewards on the host (CIDEr-D
with document frequencies from the training references, optional METEOR mix) -> Orbax
checkpoint {params, opt_state, step} + Grain iterator, automatic resume -> metrics, progress,
NaN guard -> evaluation with GT proposals (before SCST and every `eval_every_steps`), best
parameters by `scst.best_metric` in DIR/best (so `captioner_predict` can read DIR).

Events are the GT segments (PDVC's GT-proposal mode, the report's "METEOR with GT proposals"
setting); each event's reward compares its caption with that event's GT sentence.

Overlap (`scst.overlap`): the host reward computation of batch i runs while the device samples
batch i+1; batch i+1 is then sampled with the parameters before update i (one update stale,
a deliberate, small off-policy lag; the log-probabilities in the loss are always recomputed
with the current parameters). Steps that checkpoint or evaluate are synchronous, so a resumed
run continues on exactly the next batch.
"""
from __future__ import annotations

import json
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np

from captioner_jax import build, inference
from captioner_jax.scst.loss import advantages
from captioner_jax.scst.pdvc_decoder import pdvc_build_decoder
from captioner_jax.scst.rewards import CaptionReward
from captioner_jax.scst.sampler import make_sampler, mask_through_eos
from captioner_jax.scst.scst_data import (
    build_reward,
    caption_texts,
    split_validation,
    write_reference_subsets,
)
from captioner_jax.scst.update import (
    init_state,
    make_optimizer,
    make_update_step,
    trainable_labels,
)
from data_prep.infra.atomic_files import atomic_write_json
from data_prep.infra import mesh as mesh_lib
from data_prep.infra.checkpointing import Checkpointer
from data_prep.infra.metrics import MetricWriter
from data_prep.infra.progress import Progress, check_finite
from data_prep.text.caption_vocab import CaptionVocab

log = logging.getLogger(__name__)


def _load_vocab(config, train_videos) -> CaptionVocab:
    """The XE run's vocabulary (token ids must match its parameters), else the data config's."""
    init_dir = config.init_from
    path = os.path.join(init_dir, "vocab.json") if init_dir else ""
    if path and os.path.isfile(path):
        return CaptionVocab.load(path)
    return build.load_vocab(config.data, train_videos)


def _host_rewards(host, sampled, vocab, reward_fn: CaptionReward, k: int, baseline: str):
    """Rewards + advantages of one batch on the host. Returns (advantage [B*E*K], sample mask
    [B*E*K, L], metrics)."""
    b, e = host["gt_valid"].shape
    event_valid = (np.asarray(host["gt_valid"]) & np.asarray(host["valid"])[:, None]).reshape(-1)
    rows = np.flatnonzero(event_valid)  # flattened (video, event) rows that are real events
    refs = caption_texts(np.asarray(host["captions"]).reshape(b * e, -1)[rows, 1:], vocab)
    s_tok = np.asarray(sampled["sample_tokens"]).reshape(b * e, k, -1)
    samples = caption_texts(s_tok[rows].reshape(len(rows) * k, -1), vocab)
    hyps, all_refs = list(samples), [[r] for r in refs for _ in range(k)]
    greedy = None
    if "greedy_tokens" in sampled:
        greedy = caption_texts(np.asarray(sampled["greedy_tokens"])[rows], vocab)
        hyps += greedy
        all_refs += [[r] for r in refs]
    total, parts = reward_fn(hyps, all_refs)
    ns = len(rows) * k
    sample_r = total[:ns].reshape(len(rows), k)
    greedy_r = total[ns:] if greedy is not None else None
    adv_rows = advantages(sample_r, greedy_r, baseline)  # [R, K]
    adv = np.zeros((b * e, k), np.float32)
    adv[rows] = adv_rows
    valid = np.repeat(event_valid, k)
    mask = np.asarray(mask_through_eos(jnp.asarray(s_tok.reshape(b * e * k, -1)))) * valid[:, None]
    metrics = {"reward_sample": float(sample_r.mean()) if ns else 0.0,
               "advantage_abs": float(np.abs(adv_rows).mean()) if ns else 0.0,
               "sample_len": float(mask[valid].sum(1).mean()) if ns else 0.0,
               "events": float(len(rows))}
    if greedy_r is not None:
        metrics["reward_greedy"] = float(greedy_r.mean()) if len(rows) else 0.0
    for name, s in parts.items():
        metrics[f"{name}_sample"] = float(s[:ns].mean()) if ns else 0.0
        if greedy is not None:
            metrics[f"{name}_greedy"] = float(s[ns:].mean()) if len(rows) else 0.0
    return adv.reshape(-1), mask.astype(np.float32), metrics


def run(config, workdir: str) -> dict:
    os.makedirs(workdir, exist_ok=True)
    sc = config.scst
    # ------------------------------------------------------------------ data
    train_videos = build.read_split(config.data.train_captions)
    vocab = _load_vocab(config, train_videos)
    vocab.save(os.path.join(workdir, "vocab.json"))
    loader = build.feature_loader(config.data)
    val_videos = build.read_split(config.data.val_captions) if config.data.val_captions else {}
    extra_ids, eval_ids = split_validation(
        sorted(val_videos), float(sc.train_val_fraction), int(sc.split_seed))
    videos = dict(train_videos)
    videos.update({v: val_videos[v] for v in extra_ids})
    train_ids = list(videos)
    missing = set(loader.find_missing(train_ids + list(eval_ids)))
    if missing:
        log.warning("SCST: %d videos miss feature files (%s)", len(missing),
                    "zero-filled" if config.data.zero_fill_missing else "left out")
    if missing and not bool(config.data.zero_fill_missing):
        train_ids = [v for v in train_ids if v not in missing]
    eval_ids = [v for v in eval_ids if bool(config.data.zero_fill_missing) or v not in missing]
    if eval_ids and int(config.data.get("max_val_videos", 0)):
        eval_ids = eval_ids[: int(config.data.max_val_videos)]
    eval_refs = write_reference_subsets(
        [r for r in config.eval.references if r], set(eval_ids), os.path.join(workdir, "refs"))
    atomic_write_json(os.path.join(workdir, "scst_split.json"),
                      {"train_extra_val": sorted(extra_ids), "eval": sorted(eval_ids)})
    log.info("SCST: %d train videos (%d from validation), %d held-out evaluation videos",
             len(train_ids), len(extra_ids), len(eval_ids))
    reward_fn = build_reward(sc, [videos[v].sentences for v in train_ids], vocab,
                             int(config.data.max_caption_len))

    # ------------------------------------------------------------------ mesh, model, state
    devices = jax.devices()
    n_dev = int(config.get("num_devices", 0) or len(devices))
    mesh = mesh_lib.make_mesh(tuple(tuple(a) for a in config.mesh), devices=devices[:n_dev])
    global_batch = int(config.data.batch_size)
    per_host = global_batch // jax.process_count()
    feature_dim = loader.load(train_ids[0]).shape[1]
    model = build.build_model(config.model, vocab.size + 1)
    t = int(config.data.num_steps)
    dummy = (jnp.zeros((1, t, feature_dim)), jnp.ones((1, t), bool), jnp.ones((1,)))
    init_fn = lambda key: model.init({"params": key}, *dummy, method=type(model).init_all)
    abstract_params = jax.eval_shape(init_fn, jax.random.PRNGKey(0))["params"]
    if config.init_from:
        params, which, xe_step = inference.restore_params(config.init_from, abstract_params)
        log.info("SCST starts from the %s checkpoint (step %d) of %s", which, xe_step,
                 config.init_from)
    else:
        log.warning("SCST from a randomly initialised captioner (config.init_from is empty)")
        params = jax.jit(init_fn)(jax.random.PRNGKey(int(config.seed)))["params"]
    trainable = list(sc.trainable)
    tx = make_optimizer(params, learning_rate=float(sc.lr), trainable=trainable,
                        weight_decay=float(sc.weight_decay), grad_clip=float(sc.grad_clip))
    labels = trainable_labels(params, trainable)
    backbone_grad = any(
        lab == "train" and "caption_cell" not in jax.tree_util.keystr(path)
        for path, lab in jax.tree_util.tree_leaves_with_path(labels))
    abstract = jax.eval_shape(lambda p: init_state(p, tx), abstract_params)
    shardings = mesh_lib.param_shardings(abstract, mesh, rule=str(config.get("sharding",
                                                                              "replicate")))
    state = jax.jit(lambda p: init_state(p, tx), out_shardings=shardings)(params)

    k = int(sc.num_samples)
    baseline = str(sc.baseline)
    sampler = make_sampler(
        pdvc_build_decoder(model), num_samples=k, max_len=int(sc.max_len),
        temperature=float(sc.temperature), with_greedy=baseline == "greedy")
    update = make_update_step(
        pdvc_build_decoder(model, backbone_grad=backbone_grad), tx, num_samples=k,
        normalize=str(sc.normalize), state_sharding=shardings)
    batch_sharding = mesh_lib.batch_sharding(mesh)

    # ------------------------------------------------------------------ input, checkpoints
    train_iter, ckpt, restored, start = build.resumable_training_input(
        config, workdir, train_ids, videos, loader, vocab, per_host, abstract, shardings)
    if restored is not None:
        state = restored
        log.info("resumed SCST from step %d", start)

    # ------------------------------------------------------------------ evaluation
    eval_cfg = config.copy_and_resolve_references()
    with eval_cfg.unlocked():
        eval_cfg.mode = "gt_proposals"
        eval_cfg.eval.references = eval_refs
        eval_cfg.eval.rerank = False
    eval_videos = {v: val_videos[v] for v in eval_ids}
    summary_path = os.path.join(workdir, "scst_summary.json")
    summary = {"xe": None, "evals": []}
    if os.path.isfile(summary_path):
        with open(summary_path) as f:
            summary = json.load(f)
    best_metric = str(sc.best_metric)
    best_ckpt = Checkpointer(os.path.join(workdir, "best"), max_to_keep=1)
    writer = MetricWriter(workdir)

    def evaluate(step: int) -> dict:
        if not eval_ids:
            return {}
        out_path = os.path.join(workdir, "predictions", f"eval_step{step}.json")
        os.makedirs(os.path.dirname(out_path), exist_ok=True)
        metrics, _ = inference.evaluate_split(eval_cfg, model, state["params"], vocab, loader,
                                              eval_videos, eval_ids, mesh, out_path=out_path)
        flat = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
        writer.write(step, flat, split="val")
        log.info("step %d (GT proposals, %d held-out videos): METEOR %.3f CIDEr %.3f "
                 "BLEU4 %.3f", step, len(eval_ids), flat.get("METEOR", float("nan")),
                 flat.get("CIDEr", float("nan")), flat.get("Bleu_4", float("nan")))
        summary["evals"].append(dict(flat, step=step))
        prev_best = max((e.get(best_metric, -np.inf) for e in summary["evals"][:-1]),
                        default=-np.inf)
        if step > 0 and flat.get(best_metric, -np.inf) > prev_best:
            best_ckpt.save(step, {"params": state["params"]}, force=True)
            best_ckpt.wait()
        atomic_write_json(summary_path, summary)
        return flat

    if start == 0 and summary["xe"] is None and bool(sc.get("eval_before", True)):
        summary["xe"] = evaluate(0) or None
        atomic_write_json(summary_path, summary)

    # ------------------------------------------------------------------ loop
    total_steps = int(sc.total_steps)
    progress = Progress(total_steps, items_per_step=global_batch, desc="scst",
                        item_name="videos")
    base_key = jax.random.fold_in(jax.random.PRNGKey(int(config.seed)), 7)
    eval_every = int(sc.eval_every_steps)
    log_every = int(config.log_every_steps)
    ckpt_every = int(config.checkpoint_every_steps)
    overlap = bool(sc.overlap)

    def finish(pending, in_flight=None):
        """Host rewards of a sampled batch, then the (async) update.

        `in_flight`: the next batch's samples, dispatched before this call and computed by the
        device while the host scores this batch; waited for before the update donates the
        parameters that sampling reads (the device would run the two in order anyway)."""
        nonlocal state
        step, host, batch, sampled = pending
        sampled = jax.device_get(sampled)
        adv, mask, host_metrics = _host_rewards(host, sampled, vocab, reward_fn, k, baseline)
        if in_flight is not None:
            jax.block_until_ready(in_flight)
        state, metrics = update(state, batch, jnp.asarray(sampled["sample_tokens"]),
                                jnp.asarray(mask), jnp.asarray(adv))
        if step % log_every == 0 or step == total_steps or step == start + 1:
            metrics = {kk: float(v) for kk, v in jax.device_get(metrics).items()}
            check_finite(metrics["loss"], step)
            metrics.update(host_metrics)
            metrics.update(progress.rates(step))
            writer.write(step, metrics)
        progress.update(step)

    pending = None
    for step in range(start + 1, total_steps + 1):
        host = next(train_iter)
        batch = mesh_lib.global_batch(host, batch_sharding)
        sampled = sampler(state["params"], batch, jax.random.fold_in(base_key, step))
        if pending is not None:
            finish(pending, in_flight=sampled)  # the device samples `step` meanwhile
        pending = (step, host, batch, sampled)
        sync = (not overlap or step == total_steps or (ckpt_every and step % ckpt_every == 0)
                or (eval_every and step % eval_every == 0))
        if sync:
            finish(pending)
            pending = None
            ckpt.save(step, state, train_iter)
            if eval_every and (step % eval_every == 0 or step == total_steps):
                evaluate(step)
    if ckpt.latest_step() != total_steps:
        ckpt.save(total_steps, state, train_iter, force=True)
    ckpt.close()
    best_ckpt.close()
    writer.close()
    final = summary["evals"][-1] if summary["evals"] else {}
    return {"steps": total_steps, "xe": summary["xe"], "final": final}
