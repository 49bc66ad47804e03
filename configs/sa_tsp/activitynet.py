"""SA-TSP pretraining on ActivityNet v1.3 (the report's setting; GPU/TPU).

    python launch.py --config configs/sa_tsp/activitynet.py:root=data/activitynet \
        --workdir runs/activitynet/sa_tsp

R(2+1)D-34, 16 x 112 x 112 clips at 15 fps, 5 clips per segment per epoch, 8 epochs, TSP's
optimizer (SGD 0.9, wd 0.005, backbone/head lr 1e-4/2e-3 x 2 GPUs, warmup 2 epochs, x0.01 at
epochs 4 and 6, frozen stem), global batch 64 (TSP: 32 per GPU x 2), max-pooled GVF of the
released TSP model, concept head over the top-N concepts (N=1000 default), alpha = beta = 1.
Expects `{root}/shards/{train,val}-*.tfrecord` (stage write_shards at 15 fps, 128x171) and
`{root}/gvf/r2plus1d_34-max_gvf.h5`. Switches: root=DIR, concepts=N, objective=sa_tsp|tsp,
init=DIR (weights from `python -m sa_tsp_jax.import_torch`), bf16, batch=N, runlocal.
"""
from __future__ import annotations

from configs.sa_tsp import base


def get_config(arg: str | None = None):
    sw = base.parse_arg(arg)
    c = base.get_config()
    root = sw.get("root", "data/activitynet")
    c.data.train_shards = f"{root}/shards/train-*.tfrecord"
    c.data.val_shards = f"{root}/shards/val-*.tfrecord"
    c.gvf_path = sw.get("gvf", f"{root}/gvf/r2plus1d_34-max_gvf.h5")
    c.input.num_concepts = int(sw.get("concepts", 1000))
    c.input.batch_size = int(sw.get("batch", 64))
    if sw.get("objective", "sa_tsp") == "tsp":
        c.loss.beta = 0.0
    c.init_from = sw.get("init", "")
    if "bf16" in sw:
        c.model.dtype = "bfloat16"
    if "runlocal" in sw:
        c.model.variant = "small"
        c.input.batch_size = 8
        c.total_steps = 10
        c.max_eval_batches = 2
        c.log_every_steps = 1
    return c
