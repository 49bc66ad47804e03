"""The correctness part: one small f32 train step on the CPU and on the accelerator, compared
leaf by leaf."""
from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.accelerator.measure import compare_trees
from benchmarks.accelerator.sizes import TINY, Sizes


def correctness_part(accel, rtol: float, atol: float, sizes: Sizes = TINY) -> dict:
    """One f32 train step of the `sizes` (tiny) model on the CPU and on `accel`, the same
    initial state and batch; loss, metrics, updated parameters and BN statistics compared
    leaf by leaf. On a CPU-only machine `accel` may be the CPU itself (--cpu-self-check:
    exercises this code; it proves nothing about an accelerator)."""
    from data_prep.infra import mesh as mesh_lib
    from sa_tsp_jax import optim, train
    from sa_tsp_jax.losses.pretrain_loss import PretrainLossConfig
    from sa_tsp_jax.models.heads import SATSPModel
    from sa_tsp_jax.models.r2plus1d import make_backbone

    cpu = jax.devices("cpu")[0]
    # The very program `encoder_parts` compiles for --tiny --dtype float32 (so a CPU run
    # finds it in the compilation cache).
    model = SATSPModel(make_backbone(sizes.variant, dtype=jnp.float32),
                       num_actions=sizes.num_actions, num_concepts=sizes.num_concepts,
                       use_gvf=True)
    tx = optim.make_optimizer(optim.OptimConfig(warmup_epochs=0.0), steps_per_epoch=100)
    feat = model.backbone.feature_dim
    clip_shape = (*sizes.clip, 3)
    b = sizes.train_batches[0]
    rng = np.random.default_rng(1)
    batch = {"clips": rng.normal(size=(b, *clip_shape)).astype(np.float32),
             "action_label": rng.integers(-1, sizes.num_actions, b).astype(np.int32),
             "region_label": rng.integers(0, 2, b).astype(np.int32),
             "concepts": (rng.random((b, sizes.num_concepts)) < 0.2).astype(np.float32),
             "valid": np.ones(b, bool), "gvf": rng.normal(size=(b, feat)).astype(np.float32)}
    init = train.init_state_fn(model, tx, clip_shape, feat)
    # One initial state, made on the CPU (the RBG generator is not the same on every backend).
    cpu_mesh = mesh_lib.make_mesh(devices=[cpu])
    state, abstract, _ = train.init_state(init, jax.random.key(0, impl="rbg"), cpu_mesh)
    host_state = jax.device_get(state)
    out = {}
    for name, dev in (("cpu", cpu), ("accelerator", accel)):
        mesh = mesh_lib.make_mesh(devices=[dev])
        shardings = mesh_lib.param_shardings(abstract, mesh)
        # "highest" on the accelerator: f32 matmuls / convolutions without TF32 or bf16
        # passes, so that the comparison tests the program, not the precision default (XLA
        # CPU computes f32 in full either way).
        precision = (contextlib.nullcontext() if dev.platform == "cpu"
                     else jax.default_matmul_precision("highest"))
        with precision:
            step, _ = train.jit_steps(model, tx, PretrainLossConfig(), mesh, shardings)
            new_state, metrics = step(jax.device_put(host_state, shardings),
                                      mesh_lib.global_batch(batch,
                                                            mesh_lib.batch_sharding(mesh)))
            # Accuracies are argmaxes: a near-tie may flip on float rounding alone, so they
            # are not compared (the losses and the parameters are).
            out[name] = jax.device_get({"params": new_state["params"],
                                        "batch_stats": new_state["batch_stats"],
                                        "metrics": {k: v for k, v in metrics.items()
                                                    if "accuracy" not in k}})
    cmp = compare_trees(out["accelerator"], out["cpu"], rtol, atol)
    return {"status": "ok" if cmp["ok"] else "MISMATCH", "device": accel.device_kind,
            "platform": accel.platform, "rtol": rtol, "atol": atol,
            "loss_cpu": float(out["cpu"]["metrics"]["loss"]),
            "loss_accelerator": float(out["accelerator"]["metrics"]["loss"]), **cmp}
