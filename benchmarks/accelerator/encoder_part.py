"""The encoder parts: the SA-TSP trainer's train step at the largest batch that fits, and the
extraction forward, with clips/s, TFLOP/s and MFU."""
from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.accelerator.measure import fit_batch, flops_of, rates, seconds_per_call
from benchmarks.accelerator.sizes import Sizes


def encoder_parts(sizes: Sizes, mesh, peak, limit, dtype, conv_impl: str = "",
                  remat: str = "none") -> tuple[dict, dict]:
    """The trainer's train step and the extraction forward. Returns (train, extract) dicts.
    `conv_impl`: the backbone's convolution lowering ("" = the model's default); `remat`: the
    train step's activation rematerialisation (`R2Plus1D.remat`; a larger batch may fit)."""
    from data_prep.infra import mesh as mesh_lib
    from sa_tsp_jax import optim, train
    from sa_tsp_jax.losses.pretrain_loss import PretrainLossConfig
    from sa_tsp_jax.models.heads import SATSPModel
    from sa_tsp_jax.models.r2plus1d import make_backbone

    n_dev = mesh.devices.size
    overrides = {"conv_impl": conv_impl} if conv_impl else {}
    model = SATSPModel(make_backbone(sizes.variant, dtype=dtype, remat=remat, **overrides),
                       num_actions=sizes.num_actions, num_concepts=sizes.num_concepts,
                       use_gvf=True)
    tx = optim.make_optimizer(optim.OptimConfig(warmup_epochs=0.0), steps_per_epoch=100)
    feat = model.backbone.feature_dim
    clip_shape = (*sizes.clip, 3)
    init = train.init_state_fn(model, tx, clip_shape, feat)
    bs = mesh_lib.batch_sharding(mesh)
    rng = np.random.default_rng(0)

    def host_batch(b):
        return {
            "clips": rng.standard_normal((b, *clip_shape), np.float32),
            "action_label": rng.integers(-1, sizes.num_actions, b).astype(np.int32),
            "region_label": rng.integers(0, 2, b).astype(np.int32),
            "concepts": (rng.random((b, sizes.num_concepts)) < 0.05).astype(np.float32),
            "valid": np.ones(b, bool),
            "gvf": rng.standard_normal((b, feat), np.float32)}

    def batch_of(b):
        return mesh_lib.global_batch(host_batch(b), bs)

    def abstract_batch(b):
        """Shapes only: compiling a candidate batch allocates nothing on the device."""
        return {k: jax.ShapeDtypeStruct((b, *v.shape[1:]), v.dtype, sharding=bs)
                for k, v in host_batch(1).items()}

    state, _, shardings = train.init_state(init, jax.random.key(0, impl="rbg"), mesh)
    step, _ = train.jit_steps(model, tx, PretrainLossConfig(), mesh, shardings)
    holder = {"state": state}
    compile_s, lowered = {}, {}

    def compile_train(b):
        t = time.perf_counter()
        lowered[b] = step.lower(holder["state"], abstract_batch(b * n_dev))
        c = lowered[b].compile()
        compile_s[b] = time.perf_counter() - t
        return c

    def run_train(b, compiled):
        batch = batch_of(b * n_dev)

        def call():
            # The step donates the state: thread it through.
            holder["state"], metrics = compiled(holder["state"], batch)
            return metrics

        try:
            s = seconds_per_call(call, sizes.steps)
            loss = float(jax.device_get(call()["loss"]))
        except Exception:
            # An out-of-memory error may come after the state was donated: a fresh one for
            # the next (smaller) candidate.
            holder["state"] = train.init_state(init, jax.random.key(0, impl="rbg"), mesh)[0]
            raise
        return {"seconds_per_step": s, "flops_per_device": flops_of(compiled, lowered[b], n_dev),
                "loss_finite": math.isfinite(loss)}

    # Batch-free bytes per device: the state (parameters, BN statistics, momentum) and about
    # as much again for the gradients and updates.
    state_bytes = sum(x.addressable_shards[0].data.nbytes
                      for x in jax.tree.leaves(holder["state"]))
    b, r, notes = fit_batch(sizes.train_batches, compile_train, run_train, limit, probe=True,
                            fixed_bytes=2 * state_bytes)
    g = b * n_dev
    train_out = {"variant": sizes.variant, "clip": list(clip_shape),
                 "conv_impl": getattr(model.backbone, "conv_impl", None), "remat": remat,
                 "compute_dtype": jnp.dtype(dtype).name, "param_dtype": "float32",
                 "batch_per_device": b, "global_batch": g, "compile_s": compile_s[b],
                 "clips_per_s": g / r["seconds_per_step"],
                 "flops_per_clip": (r["flops_per_device"] * n_dev / g
                                    if r["flops_per_device"] else None),
                 **rates(r["flops_per_device"], r["seconds_per_step"], n_dev, peak),
                 "seconds_per_step": r["seconds_per_step"], "loss_finite": r["loss_finite"],
                 "batches_passed_over": notes}

    backbone = model.backbone
    variables = {"params": holder["state"]["params"]["backbone"],
                 "batch_stats": holder["state"]["batch_stats"]["backbone"]}
    fwd = jax.jit(lambda v, x: backbone.apply(v, x, train=False), out_shardings=bs)
    ecompile_s = {}

    def clips_of(b):
        return mesh_lib.global_batch(
            {"clips": rng.standard_normal((b * n_dev, *clip_shape), np.float32)}, bs)["clips"]

    def compile_extract(b):
        t = time.perf_counter()
        lowered[("extract", b)] = fwd.lower(variables, abstract_batch(b * n_dev)["clips"])
        c = lowered[("extract", b)].compile()
        ecompile_s[b] = time.perf_counter() - t
        return c

    def run_extract(b, compiled):
        clips = clips_of(b)
        return {"seconds": seconds_per_call(lambda: compiled(variables, clips), sizes.steps),
                "flops_per_device": flops_of(compiled, lowered[("extract", b)], n_dev)}

    eb, er, enotes = fit_batch(sizes.extract_batches, compile_extract, run_extract, limit,
                               probe=False)
    eg = eb * n_dev
    extract_out = {"variant": sizes.variant, "clip": list(clip_shape),
                   "compute_dtype": jnp.dtype(dtype).name, "batch_per_device": eb,
                   "global_batch": eg, "compile_s": ecompile_s[eb],
                   "clips_per_s": eg / er["seconds"],
                   "flops_per_clip": (er["flops_per_device"] * n_dev / eg
                                      if er["flops_per_device"] else None),
                   **rates(er["flops_per_device"], er["seconds"], n_dev, peak),
                   "batches_passed_over": enotes}
    return train_out, extract_out
