"""The main job: every stage on the embedded synthetic data set (`make demo`).

    python launch.py --config configs/pipeline/synthetic.py --workdir demo_out
    python launch.py --config configs/pipeline/synthetic.py:size=tiny --workdir /tmp/e2e
    python launch.py --config configs/pipeline/synthetic.py --workdir demo_out \
        --config.force=captioner_gt_seed0     # rerun one step (and nothing else)

Steps (each a launch.py stage with its own config; a finished step is skipped on rerun):
  data -> text -> shards -> sa_tsp (pretraining) -> features (extraction) ->
  captioner (learned proposals) + predict -> baseline (most frequent training caption on
  every GT segment) -> captioner_gt_seed{0,1,2} (GT proposals) + predict
  -> scst (from captioner_gt_seed0; the defaults of configs/captioner/synthetic_scst.py:
  CIDEr-D reward, mean-of-others baseline, lr 5e-5) -> ensemble (of the three GT-proposal
  captioners),
then a table of the official metrics (`{workdir}/results.md`).

The captioners run on one device (`devices=1`): their synthetic batches of 4 videos are too
small to split over many devices; the encoder uses all of them.

Switches: size=demo (default; under 20 minutes on 2 CPU cores) | tiny (the end-to-end test:
a few steps per stage, about 2.5 minutes with an empty compilation cache), seed=N (data set
seed).
"""
from __future__ import annotations

import ml_collections

from configs.common import one_of, parse_arg, run_block

_SIZES = {
    # data set size, encoder steps, captioner epochs, SCST steps, evaluation cadence
    "demo": dict(data="demo", sa_tsp_steps=400, epochs=12, scst_steps=300, runlocal=""),
    "tiny": dict(data="tiny", sa_tsp_steps=6, epochs=2, scst_steps=4, runlocal=",runlocal"),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    sw = parse_arg(arg, size="demo", seed=0)
    size = one_of("size", sw.size, sorted(_SIZES))
    s = _SIZES[size]
    data = "{workdir}/data"
    concepts = f"{data}/text/concepts.json"
    features = "{workdir}/features_sa_tsp/features"
    captioner = (f"configs/captioner/synthetic.py:root={data},features={features},dim=64,"
                 f"epochs={s['epochs']},eval_every={s['epochs']},devices=1{s['runlocal']}")

    def gt_member(seed: int) -> list[dict]:
        workdir = f"captioner_gt_seed{seed}"
        return [
            {"name": workdir, "config": f"{captioner},mode=gt,seed={seed}", "workdir": workdir},
            {"name": f"predict_gt_seed{seed}", "workdir": workdir,
             "config": f"{captioner},mode=gt,seed={seed},predict",
             "report": {"table": "GT proposals (val_1 + val_2 references)",
                        "row": f"captioner seed {seed}", "key": ""}},
        ]

    c = ml_collections.ConfigDict()
    c.stage = "pipeline"
    c.run = run_block()
    c.size = size
    c.force = ""
    c.only = ""
    c.report = "metric_tables"  # data_prep/orchestration/registry.py REPORTS
    c.steps = [
        {"name": "data", "workdir": "data",
         "config": f"configs/data/synthetic.py:size={s['data']},seed={sw.seed}"},
        {"name": "text", "workdir": "data/text",
         "config": f"configs/data/text_synthetic.py:data_dir={data}"},
        {"name": "shards", "workdir": "data/shards",
         "config": f"configs/data/shards_synthetic.py:root={data},concepts={concepts}"
                   f"{s['runlocal'].replace('runlocal', 'shards=1')}"},
        {"name": "sa_tsp", "workdir": "sa_tsp",
         "config": f"configs/sa_tsp/synthetic.py:root={data},concept_vocab={concepts},"
                   f"steps={s['sa_tsp_steps']}"},
        {"name": "features", "workdir": "features_sa_tsp",
         # Stride 4 frames of the 7.5 fps shards: one feature per 0.53 s.
         "config": f"configs/sa_tsp/extract_synthetic.py:root={data},stride=4,"
                   "params={workdir}/sa_tsp/params"},
        {"name": "captioner", "workdir": "captioner", "config": captioner},
        {"name": "predict", "workdir": "captioner", "config": f"{captioner},predict",
         "report": {"table": "Learned proposals (val_1 + val_2 references)",
                    "row": "captioner (SA-TSP features)", "key": "", "per_tiou": True}},
        {"name": "baseline", "workdir": "baseline",
         "config": f"configs/caption_baseline.py:root={data}",
         "report": {"table": "GT proposals (val_1 + val_2 references)",
                    "row": "baseline: most frequent training caption", "key": ""}},
        *gt_member(0),
        *gt_member(1),
        *gt_member(2),
        {"name": "scst", "workdir": "captioner_scst",
         "config": f"configs/captioner/synthetic_scst.py:root={data},features={features},"
                   "dim=64,devices=1,"
                   f"init={{workdir}}/captioner_gt_seed0,scst_steps={s['scst_steps']},"
                   f"eval_every={s['scst_steps']}{s['runlocal']}",
         "report": [
             {"table": "SCST (GT proposals, held-out val videos)", "row": "XE (before SCST)",
              "key": "xe"},
             {"table": "SCST (GT proposals, held-out val videos)", "row": "XE + SCST",
              "key": "final"}]},
        {"name": "ensemble", "workdir": "ensemble",
         "config": "configs/ensemble/synthetic.py:root={workdir}",
         "overrides": {
             "predictions": [f"{{workdir}}/captioner_gt_seed{i}/predictions/val_1.json"
                             for i in range(3)],
             "concept_vocab": concepts, "idf_table": f"{data}/text/idf.json",
             "proposals_file": f"{data}/captions/val_1.json",
             "references": [f"{data}/captions/val_1.json", f"{data}/captions/val_2.json"]},
         "report": {"table": "GT proposals (val_1 + val_2 references)",
                    "row": "ensemble of the 3 (concepts, then max IDF)",
                    "key": "metrics.ensemble"}},
    ]
    return c
