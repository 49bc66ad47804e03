"""SA-TSP pretraining on the embedded synthetic data set (2 CPU cores, minutes).

    python launch.py --config configs/sa_tsp/synthetic.py:root=runs/synthetic \
        --workdir runs/synthetic/sa_tsp

Expects `{root}/shards/train-*.tfrecord` and `{root}/shards/val-*.tfrecord` (stage
write_shards) with concept ids from the text_vocab stage. Switches (comma-separated):
  root=DIR         data root (default runs/synthetic)
  variant=NAME     small (default) | r2plus1d_18 | r2plus1d_34
  gvf=PATH         GVF HDF5 file; without it the region head sees the clip feature only
  objective=NAME   sa_tsp (default) | tsp (beta=0) | action (alpha=beta=0)
  concepts=N       concept vocabulary size (default 64), unless concept_vocab= is given
  concept_vocab=P  concepts.json of the text_vocab stage: sets the size from the file
  steps=N          total steps (default 300)
  actions=N        action classes of the head (default 16)
  runlocal         even smaller: 20 steps, batch 8
"""
from __future__ import annotations

from configs.sa_tsp import base


def get_config(arg: str | None = None):
    sw = base.parse_arg(arg, root="runs/synthetic", variant="small", gvf="", objective="sa_tsp",
                        concepts=64, concept_vocab="", steps=300, actions=16, runlocal=False)
    c = base.get_config()
    root = sw.root
    c.data.train_shards = f"{root}/shards/train-*.tfrecord"
    c.data.val_shards = f"{root}/shards/val-*.tfrecord"
    c.data.concept_vocab = sw.concept_vocab
    c.gvf_path = sw.gvf
    c.model.use_gvf = bool(c.gvf_path)
    c.model.variant = sw.variant
    # The synthetic videos carry a handful of action classes; the head is sized generously.
    c.model.num_actions = sw.actions
    c.data.batch_size = 16
    c.input.update(dict(clip_length=8, resize=(64, 64), crop=56,
                        clips_per_segment=2, num_concepts=sw.concepts,
                        read_threads=2, prefetch_buffer=2))
    objective = sw.objective
    if objective == "tsp":
        c.loss.beta = 0.0
    elif objective == "action":
        c.loss.alpha, c.loss.beta = 0.0, 0.0
    elif objective != "sa_tsp":
        raise ValueError(f"objective must be sa_tsp, tsp or action, got {objective!r}")
    # Small data, from scratch: Adam converges in a few hundred steps on CPU.
    c.optim.update(dict(name="adam", backbone_lr=1e-3, head_lr=1e-3, weight_decay=1e-4,
                        warmup_epochs=0.2, milestones_epochs=(), freeze_stem=False))
    c.total_steps = sw.steps
    c.rng_impl = "rbg"  # threefry init takes ~30 s to compile on 2 CPU cores
    c.log_every_steps = 10
    c.progress_every_s = 10.0
    c.checkpoint_every_steps = 100
    c.eval_every_steps = 100
    c.max_eval_batches = 20
    if sw.runlocal:
        c.total_steps = 20
        c.data.batch_size = 8
        c.checkpoint_every_steps = 10
        c.eval_every_steps = 20
        c.max_eval_batches = 2
    return c
