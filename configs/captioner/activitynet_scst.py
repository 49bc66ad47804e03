"""Stage "captioner_scst" on ActivityNet Captions: SCST of a GT-proposal XE captioner on
train + ~80% of val_1 videos, evaluated with GT proposals on the other ~20% (val_1 + val_2
references restricted to them), as the SA-TSP report.

    python launch.py --config configs/captioner/activitynet.py:features=DIR,mode=gt \
        --workdir runs/anet/xe
    python launch.py \
        --config configs/captioner/activitynet_scst.py:features=DIR,init=runs/anet/xe \
        --workdir runs/activitynet/captioner_scst

Switches: the data switches of configs/captioner/activitynet.py, the common ones of
configs/captioner/base.py (head=, batch=, seed=, devices=, runlocal) and
those of configs/captioner/scst_common.py (default: CIDEr-D reward, greedy baseline, k=5,
lr 5e-5, 20000 steps, evaluation every 2000).
"""
from __future__ import annotations

from configs.captioner import activitynet, base, scst_common

SWITCHES = dict(base.COMMON_SWITCHES, **activitynet.SWITCHES, **scst_common.SWITCHES)


def get_config(arg: str | None = None):
    sw = base.parse_arg(arg, **SWITCHES)
    c = activitynet.build(sw)
    c.stage = "captioner_scst"
    c.mode = "gt_proposals"  # SCST samples captions of the GT events
    c.init_from = sw.init
    runlocal = sw.runlocal
    c.scst = scst_common.scst_block(
        sw, num_samples=2 if runlocal else 5, total_steps=10 if runlocal else 20000,
        eval_every_steps=10 if runlocal else 2000, max_len=int(c.eval.max_len))
    c.eval.soda = False  # GT proposals: SODA_c adds nothing; keeps evaluations cheap
    c.checkpoint_every_steps = 5 if runlocal else 1000
    c.log_every_steps = 1 if runlocal else 50
    return base.for_stage(c)
