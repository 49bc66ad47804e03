"""The SCST block shared by `synthetic_scst.py` and `activitynet_scst.py` (not launched).

Switches (comma-separated key=value in the config arg, on top of the captioner's common ones):
  init=DIR        workdir of the XE captioner run to fine-tune (its best, else latest, params;
                  its vocab.json). Train that run with `mode=gt` (GT-proposal queries).
  k=N             samples per event
  reward=cider|meteor_mix   CIDEr-D (Rennie et al.) or 0.95 METEOR + 0.05 CIDEr-D
  baseline=greedy|mean_others
  trainable=caption|all     caption head only (default, the PDVC-based recipe) or everything
  scst_steps=N, scst_lr=X, eval_every=N (steps), val_frac=F (share of val videos added to
  training, default 0.8 as the report; 0 = train split only), overlap=0|1, temperature=X
The data set's SCST config chooses the defaults (`scst_block`'s keyword arguments).
"""
from __future__ import annotations

import ml_collections

from configs.common import one_of

SWITCHES = dict(init="", k=int, temperature=1.0, reward="cider", baseline="greedy",
                trainable="caption", scst_steps=int, scst_lr=5e-5, eval_every=int,
                val_frac=0.8, overlap=True)


def scst_block(sw, *, num_samples: int, total_steps: int, eval_every_steps: int,
               max_len: int) -> ml_collections.ConfigDict:
    """`config.scst` from the parsed switches `sw`; the keyword arguments are the defaults of
    the optional switches k, scst_steps and eval_every; `max_len` is the captioner's
    eval.max_len (generated tokens). The `init` switch is the config's top-level `init_from`
    (set by the caller)."""
    s = ml_collections.ConfigDict()
    s.num_samples = num_samples if sw.k is None else sw.k
    s.temperature = sw.temperature
    s.max_len = max_len
    s.baseline = one_of("baseline", sw.baseline, ("greedy", "mean_others"))
    reward = one_of("reward", sw.reward, ("cider", "meteor_mix"))
    s.cider_weight = 1.0 if reward == "cider" else 0.05
    s.meteor_weight = 0.0 if reward == "cider" else 0.95
    s.normalize = "samples"
    trainable = one_of("trainable", sw.trainable, ("caption", "all"))
    s.trainable = ["^caption_cell/"] if trainable == "caption" else [".*"]
    s.lr = sw.scst_lr  # the PDVC-based SCST recipe: AdamW 5e-5
    s.weight_decay = 1e-4
    s.grad_clip = 100.0
    s.total_steps = total_steps if sw.scst_steps is None else sw.scst_steps
    s.eval_every_steps = (  # 0 = never
        eval_every_steps if sw.eval_every is None else sw.eval_every)
    s.eval_before = True  # evaluate the XE parameters first (the "before SCST" row)
    s.best_metric = "METEOR"
    s.train_val_fraction = sw.val_frac
    s.split_seed = 0
    s.overlap = sw.overlap
    return s
