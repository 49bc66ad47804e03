"""The captioner parts: the trainer's step (forward with matching costs, host Hungarian,
donated update) and greedy inference, per batch size, with videos/s, TFLOP/s and MFU."""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.accelerator.measure import flops_of, rates, seconds_per_call
from benchmarks.accelerator.sizes import Sizes


def captioner_parts(sizes: Sizes, mesh, peak, budget=None) -> tuple[list, list]:
    """The captioner trainer's step (matching + update) and inference, per batch size."""
    from benchmarks.captioner_throughput import random_batch
    from captioner_jax import build, inference
    from captioner_jax import train as ctrain
    from captioner_jax.objective import MatcherCosts
    from configs.captioner import base
    from data_prep.infra import mesh as mesh_lib

    n_dev = mesh.devices.size
    cfg = base.get_config()
    for key, value in sizes.captioner_model:
        cfg.model[key] = value
    model = build.build_model(cfg.model, sizes.vocab)
    tx, schedule = build.build_optimizer(cfg.optim, 1000, 30)
    bs = mesh_lib.batch_sharding(mesh)
    replicated = mesh_lib.replicated(mesh)
    rng = np.random.default_rng(0)
    t = sizes.feat_steps
    dummy = (jnp.zeros((1, t, sizes.feat_dim)), jnp.ones((1, t), bool), jnp.ones((1,)))

    def init_state(key):
        params = model.init({"params": key}, *dummy, method=type(model).init_all)["params"]
        return {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}

    key = jax.random.key(0)
    abstract = jax.eval_shape(init_state, key)
    shardings = mesh_lib.param_shardings(abstract, mesh)
    costs = MatcherCosts(**dict(cfg.matcher))
    weights = {k: float(v) for k, v in dict(cfg.loss_weights).items()}
    train_step = ctrain.make_train_step(model, tx, schedule, mode="queries", costs=costs,
                                        weights=weights, state_sharding=shardings,
                                        metric_sharding=replicated)
    training_forward = ctrain.make_training_forward(model, costs, bs)
    predict = inference.make_predict_fn(model, "queries", sizes.caption_len)
    word_gate_fn = inference.make_word_gate_fn(model)
    step_key = jax.jit(lambda k: jax.random.fold_in(k, 1), out_shardings=replicated)(key)
    train_rows, infer_rows = [], []
    for b in sizes.captioner_batches:
        if train_rows and budget is not None and budget.left() < 60:
            print(f"[captioner] batch {b * n_dev}: skipped, time budget spent")
            break
        g = b * n_dev
        host = {k: np.asarray(v) for k, v in random_batch(
            rng, g, t=t, c=sizes.feat_dim, e=sizes.max_events, length=sizes.caption_len,
            vocab=sizes.vocab).items()}
        batch = mesh_lib.global_batch(host, bs)
        holder = {"state": jax.jit(init_state, out_shardings=shardings)(key)}
        # Compiled once, ahead of time (the FLOPs come from these very programs).
        t0 = time.perf_counter()
        state0 = holder["state"]
        costs_l = training_forward.lower(state0["params"], batch, step_key, state0["step"])
        costs_c = costs_l.compile()
        assign, fwd = ctrain._match(costs_c, state0, batch, host, step_key, mesh)
        step_l = train_step.lower(state0, batch, step_key, assign, fwd)
        del fwd
        step_c = step_l.compile()
        compile_s = time.perf_counter() - t0
        f1, f2 = flops_of(costs_c, costs_l, n_dev), flops_of(step_c, step_l, n_dev)
        flops = f1 + f2 if f1 and f2 else None

        def call(batch=batch, host=host, holder=holder, costs_c=costs_c, step_c=step_c):
            # The trainer's step: the forward with its matching costs, host Hungarian,
            # donated update on the forward's outputs.
            assign, fwd = ctrain._match(costs_c, holder["state"], batch, host, step_key, mesh)
            holder["state"], metrics = step_c(holder["state"], batch, step_key, assign, fwd)
            return metrics

        s = seconds_per_call(call, sizes.captioner_steps)
        train_rows.append({"batch_per_device": b, "global_batch": g, "compile_s": compile_s,
                           "seconds_per_step": s, "videos_per_s": g / s,
                           **rates(flops, s, n_dev, peak)})

        params = holder["state"]["params"]
        word_gates = jax.block_until_ready(word_gate_fn(params))  # once per params (predict_split)
        t0 = time.perf_counter()
        predict_l = predict.lower(params, batch, word_gates)
        compiled = predict_l.compile()
        pcompile = time.perf_counter() - t0
        ps = seconds_per_call(lambda c=compiled, p=params, x=batch, w=word_gates: c(p, x, w),
                              sizes.captioner_steps)
        infer_rows.append({"batch_per_device": b, "global_batch": g, "compile_s": pcompile,
                           "seconds_per_batch": ps, "videos_per_s": g / ps,
                           "caption_tokens": sizes.caption_len,
                           **rates(flops_of(compiled, predict_l, n_dev), ps, n_dev, peak)})
    return train_rows, infer_rows
