"""Shared defaults of SA-TSP pretraining (stage "sa_tsp_train"); not launched directly.

Dataset configs (`synthetic.py`, `activitynet.py`) start from `get_config()` here and
override paths and sizes. Switch parsing (`key=value,...`) lives in `parse_arg`.
"""
from __future__ import annotations

import ml_collections

from configs.common import one_of, parse_arg, run_block  # noqa: F401 (re-exported)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    del arg
    c = ml_collections.ConfigDict()
    c.stage = "sa_tsp_train"
    c.seed = 0
    c.rng_impl = "threefry2x32"  # parameter-init PRNG; "rbg" compiles faster on CPU
    c.run = run_block()
    # Mesh: pure data parallelism over all devices; for FSDP use
    # (("data", -1), ("fsdp", N)) and sharding = "fsdp".
    c.mesh = (("data", -1),)
    c.sharding = "replicate"  # parameters and optimizer state: replicate | fsdp

    c.data = ml_collections.ConfigDict()
    c.data.train_shards = ""  # glob, comma list or list of TFRecord shards
    c.data.val_shards = ""
    # Concept vocabulary of the text_vocab stage; when set, its size is input.num_concepts.
    c.data.concept_vocab = ""
    c.data.batch_size = 64  # global (TSP: 32 per GPU x 2 GPUs)
    c.gvf_path = ""  # HDF5 {video_id: [D]} (sa_tsp_jax/gvf.py); needed iff model.use_gvf

    # data_prep.pipelines.tsp_pipeline.TspInputConfig fields but batch_size (data.batch_size;
    # the trainer passes the per-host share).
    c.input = ml_collections.ConfigDict(dict(
        clip_length=16, fps=15.0, clips_per_segment=5, resize=(128, 171),
        crop=112, num_concepts=1000, concept_rule="any_overlap",
        read_threads=8, prefetch_buffer=8))

    # remat: what each residual block's backward reads from its forward (none | conv_outputs
    # | block; sa_tsp_jax/models/r2plus1d.py): "block" recomputes the blocks in the backward
    # pass for a larger batch per device where activations fill the accelerator's memory.
    c.model = ml_collections.ConfigDict(dict(
        variant="r2plus1d_34", midplane_rule="tsp", dtype="float32", num_actions=200,
        use_gvf=True, remat="none"))

    # L = action_weight * L_action + alpha * L_temporal + beta * L_semantic. The report gives
    # neither alpha nor beta; 1 and 1 are our defaults. beta = 0: plain TSP.
    c.loss = ml_collections.ConfigDict(dict(
        action_weight=1.0, alpha=1.0, beta=1.0, gamma_neg=4.0, gamma_pos=1.0, clip=0.05,
        eps=1e-8))

    # TSP: SGD(0.9), wd 0.005, backbone 1e-4 x world size, heads 2e-3 x world size (2 GPUs),
    # warmup 2 epochs from 1e-5, x0.01 at epochs 4 and 6, 8 epochs, frozen stem.
    c.optim = ml_collections.ConfigDict(dict(
        name="sgd", backbone_lr=2e-4, head_lr=4e-3, momentum=0.9, weight_decay=0.005,
        warmup_epochs=2.0, warmup_factor=1e-5, milestones_epochs=(4, 6), gamma=0.01,
        freeze_stem=True, adam_b1=0.9, adam_b2=0.999))
    c.num_epochs = 8
    c.total_steps = 0  # > 0 overrides num_epochs
    c.max_steps_this_run = 0  # > 0: stop (with a checkpoint) after that many steps
    c.init_from = ""  # directory written by `python -m sa_tsp_jax.import_torch`

    c.log_every_steps = 50
    c.progress_every_s = 30.0
    c.checkpoint_every_steps = 1000
    c.keep_checkpoints = 3
    c.eval_every_steps = 0  # 0: once per epoch
    c.max_eval_batches = 0  # 0: the whole validation set
    c.concept_threshold = 0.5
    return c
