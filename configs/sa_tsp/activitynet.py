"""SA-TSP pretraining on ActivityNet v1.3 (the report's setting; GPU/TPU).

    python launch.py --config configs/sa_tsp/activitynet.py:root=data/activitynet \
        --workdir runs/activitynet/sa_tsp

R(2+1)D-34, 16 x 112 x 112 clips at 15 fps, 5 clips per segment per epoch, 8 epochs, TSP's
optimizer (SGD 0.9, wd 0.005, backbone/head lr 1e-4/2e-3 x 2 GPUs, warmup 2 epochs, x0.01 at
epochs 4 and 6, frozen stem), global batch 64 (TSP: 32 per GPU x 2), max-pooled GVF of the
released TSP model, concept head over the top-N concepts (N=1000 default), alpha = beta = 1.
Expects `{root}/shards/{train,val}-*.tfrecord` (stage write_shards at 15 fps, 128x171) and
`{root}/gvf/r2plus1d_34-max_gvf.h5`. Switches: root=DIR, gvf=PATH, concepts=N, objective=sa_tsp|tsp,
init=DIR (weights from `python -m sa_tsp_jax.import_torch`), bf16, batch=N,
remat=none|conv_outputs|block (activation memory, see configs/sa_tsp/base.py), runlocal.
"""
from __future__ import annotations

from configs.sa_tsp import base


def get_config(arg: str | None = None):
    sw = base.parse_arg(arg, root="data/activitynet", gvf="", concepts=1000, batch=64,
                        objective="sa_tsp", init="", bf16=False, remat="none",
                        runlocal=False)
    c = base.get_config()
    root = sw.root
    c.data.train_shards = f"{root}/shards/train-*.tfrecord"
    c.data.val_shards = f"{root}/shards/val-*.tfrecord"
    c.gvf_path = sw.gvf or f"{root}/gvf/r2plus1d_34-max_gvf.h5"
    c.input.num_concepts = sw.concepts
    c.data.batch_size = sw.batch
    if base.one_of("objective", sw.objective, ("sa_tsp", "tsp")) == "tsp":
        c.loss.beta = 0.0
    c.init_from = sw.init
    if sw.bf16:
        c.model.dtype = "bfloat16"
    c.model.remat = base.one_of("remat", sw.remat, ("none", "conv_outputs", "block"))
    if sw.runlocal:
        c.model.variant = "small"
        c.data.batch_size = 8
        c.total_steps = 10
        c.max_eval_batches = 2
        c.log_every_steps = 1
    return c
