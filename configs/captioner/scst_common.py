"""The SCST block shared by `synthetic_scst.py` and `activitynet_scst.py` (not launched).

Switches (comma-separated key=value in the config arg, on top of the captioner's):
  init=DIR        workdir of the XE captioner run to fine-tune (its best, else latest, params;
                  its vocab.json). Train that run with `mode=gt` (GT-proposal queries).
  k=N             samples per event (default 5)
  reward=cider|meteor_mix   CIDEr-D (Rennie et al.) or 0.95 METEOR + 0.05 CIDEr-D
  baseline=greedy|mean_others
  trainable=caption|all     caption head only (default, the PDVC-based recipe) or everything
  scst_steps=N, scst_lr=X, eval_every=N (steps), val_frac=F (share of val videos added to
  training, default 0.8 as the report; 0 = train split only), overlap=0|1
"""
from __future__ import annotations

import ml_collections


def scst_block(sw: dict[str, str]) -> ml_collections.ConfigDict:
    s = ml_collections.ConfigDict()
    s.init_workdir = sw.get("init", "")
    s.num_samples = int(sw.get("k", 5))
    s.temperature = float(sw.get("temperature", 1.0))
    s.max_len = 30  # generated tokens, set to the captioner's eval.max_len by the caller
    s.baseline = sw.get("baseline", "greedy")
    reward = sw.get("reward", "cider")
    if reward not in ("cider", "meteor_mix"):
        raise ValueError(f"reward must be cider or meteor_mix, got {reward!r}")
    s.cider_weight = 1.0 if reward == "cider" else 0.05
    s.meteor_weight = 0.0 if reward == "cider" else 0.95
    s.normalize = "samples"
    trainable = sw.get("trainable", "caption")
    s.trainable = ["^caption_cell/"] if trainable == "caption" else [".*"]
    s.lr = float(sw.get("scst_lr", 5e-5))  # the PDVC-based SCST recipe: AdamW 5e-5
    s.weight_decay = 1e-4
    s.grad_clip = 100.0
    s.total_steps = int(sw.get("scst_steps", 20000))
    s.eval_every_steps = int(sw.get("eval_every", 2000))  # 0 = never
    s.eval_before = True  # evaluate the XE parameters first (the "before SCST" row)
    s.best_metric = "METEOR"
    s.train_val_fraction = float(sw.get("val_frac", 0.8))
    s.split_seed = 0
    s.overlap = sw.get("overlap", "1") not in ("0", "False", "false")
    return s
