"""Stage "captioner_scst" on ActivityNet Captions: SCST of a GT-proposal XE captioner on
train + ~80% of val_1 videos, evaluated with GT proposals on the other ~20% (val_1 + val_2
references restricted to them), as the SA-TSP report.

    python launch.py --config configs/captioner/activitynet.py:features=DIR,mode=gt \
        --workdir runs/anet/xe
    python launch.py \
        --config configs/captioner/activitynet_scst.py:features=DIR,init=runs/anet/xe \
        --workdir runs/activitynet/captioner_scst

Switches: those of configs/captioner/activitynet.py and configs/captioner/scst_common.py.
"""
from __future__ import annotations

from configs.captioner import activitynet, base, scst_common


def get_config(arg: str | None = None):
    sw = base.parse_arg(arg)
    sw.setdefault("mode", "gt")
    c = activitynet.get_config(",".join(f"{k}={v}" for k, v in sw.items()))
    c.stage = "captioner_scst"
    c.scst = scst_common.scst_block(sw)
    c.scst.max_len = int(c.eval.max_len)
    c.eval.soda = False  # GT proposals: SODA_c adds nothing; keeps evaluations cheap
    c.checkpoint_every_steps = 1000
    c.log_every_steps = 50
    if "runlocal" in sw:
        c.scst.total_steps = int(sw.get("scst_steps", 10))
        c.scst.eval_every_steps = int(sw.get("eval_every", 10))
        c.scst.num_samples = int(sw.get("k", 2))
        c.checkpoint_every_steps = 5
        c.log_every_steps = 1
    return c
