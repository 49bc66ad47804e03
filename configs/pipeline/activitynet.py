"""The whole ActivityNet chain as one pipeline (stage "pipeline"; GPU/TPU for the real run).

    python launch.py --config configs/pipeline/activitynet.py:videos=data/anet/videos,\
init=weights/tsp --workdir runs/anet
    python launch.py --config configs/pipeline/activitynet.py:features=runs/features/features \
        --workdir runs/anet_captioners          # pre-extracted features: no encoder steps
    python launch.py --config configs/pipeline/activitynet.py:runlocal --workdir /tmp/anet
                                                # CI: real annotations, 6 ids, tiny everything

Steps (each a launch.py stage with its own config; a finished step is skipped on rerun,
`--config.force=NAME` reruns one, `--config.only=A,B` runs only those):
  text (configs/data/text_activitynet.py: vocabularies, top-N concepts, IDF) ->
  shards (configs/data/shards_activitynet.py: 15 fps, 128x171) ->
  gvf (configs/sa_tsp/extract_activitynet.py with the imported TSP weights: their max-pooled
       global video features, which the SA-TSP region head reads; skipped with gvf=) ->
  sa_tsp (configs/sa_tsp/activitynet.py: SA-TSP pretraining from the imported TSP weights) ->
  features (configs/sa_tsp/extract_activitynet.py with the SA-TSP encoder) ->
  captioner + predict (configs/captioner/activitynet.py: learned proposals) ->
  captioner_gt_seed{0..M-1} + predict_gt_seed{i} (GT proposals, seeds 0..M-1) ->
  scst (configs/captioner/activitynet_scst.py from captioner_gt_seed0) ->
  ensemble (configs/ensemble/activitynet.py of the M GT-proposal captioners, the report's
            rule: concepts, then max IDF) ->
  evaluate (configs/evaluate.py: the learned-proposal captioner's val_1 predictions, every
            tIoU and SODA_c, official evaluator),
then the metric tables (`{workdir}/results.md`, `results.json`).

Switches (comma-separated key=value):
  data=DIR        annotation root laid out as ../shared/data (default: that folder):
                  activitynet_captions/ (captions, PDVC vocabulary) and activitynet_v1.3/tsp/;
                  with runlocal, the root the subset is taken from
  videos=DIR      the ActivityNet videos, named by id (default data/activitynet/videos)
  init=DIR        TSP weights to start SA-TSP from: a `python -m sa_tsp_jax.import_torch`
                  output (default weights/tsp)
  gvf=PATH        the TSP model's GVF HDF5 file (e.g. TSP's released r2plus1d_34-max_gvf.h5)
                  instead of the gvf step
  features=DIR    pre-extracted per-video `.npy` features (or an `.h5` file keyed by video id,
                  TSP layout): no shards / gvf / sa_tsp / features steps; the text step stays
                  (the ensemble's concepts and IDF)
  dim=N           dimension of `features=` (default 512)
  members=N       GT-proposal captioners in the ensemble (default 5, the report's M; here
                  seeds of one captioner on the same features, the report's differ in features)
  concepts=N      concept vocabulary size (default 1000)
  runlocal        the wiring test: a `data` step (configs/data/activitynet_subset.py) writes
                  the real annotation files of ../shared/data restricted to 4 train + 2 val
                  video ids with a generated 64x64 video per id; a `tsp_init` step (TSP
                  objective, a few steps, small R(2+1)D) stands in for the imported weights;
                  every stage runs a few steps of a tiny model; 2 ensemble members. A few
                  minutes on 2 CPU cores (tests/test_pipeline_activitynet.py)
"""
from __future__ import annotations

import os

import ml_collections

from configs.common import parse_arg, run_block
from data_prep.infra import paths

SHARED_DATA = os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data"))

# runlocal: the encoder's tiny clip geometry (the synthetic data set's: 8 frames at 15 fps,
# 64x64 frames, crop 56), a few steps; both encoder trainings (tsp_init, sa_tsp) get it.
_TINY_ENCODER = {
    "input.clip_length": 8, "input.resize": (64, 64), "input.crop": 56,
    "input.clips_per_segment": 2, "input.read_threads": 2, "input.prefetch_buffer": 2,
    "data.batch_size": 8, "total_steps": 3, "eval_every_steps": 3, "max_eval_batches": 1,
    "checkpoint_every_steps": 3, "log_every_steps": 1, "progress_every_s": 10.0,
    "rng_impl": "rbg",  # threefry's parameter init compiles for ~30 s on 2 cores
}
_TINY_EXTRACT = {"data.batch_size": 8, "read_threads": 2, "videos_per_chunk": 8,
                 "progress_every_s": 10.0}
_TINY_DIM = 64  # the small R(2+1)D's feature dimension
# runlocal: one encoder and one decoder layer (the captioner's runlocal model has two of each;
# one halves the compile time, which is most of a runlocal step). Every captioner step gets
# it: prediction and SCST restore the trained parameters into the configured model.
_TINY_CAPTIONER = {"model.enc_layers": 1, "model.dec_layers": 1}


def _local_absolute(path: str) -> str:
    """`path` absolute (relative to the current directory) unless it is a URI: the steps
    resolve relative paths against their own roots."""
    return paths.absolute(path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    sw = parse_arg(arg, data=SHARED_DATA, videos=str, init=str, gvf="", features="", dim=512,
                   members=5, concepts=1000, runlocal=False)
    runlocal = sw.runlocal
    if sw.members < 1:
        raise ValueError(f"config switch members={sw.members}: at least 1")
    if runlocal:
        given = [k for k in ("videos", "init", "gvf", "features") if sw[k]]
        if given:
            raise ValueError(f"config switch(es) {given} with runlocal: runlocal generates "
                             "its own videos, TSP weights and features")
    source = _local_absolute(sw.data)
    data = "{workdir}/data" if runlocal else source
    captions = f"{data}/activitynet_captions"
    videos = "{workdir}/data/videos" if runlocal else _local_absolute(
        sw.videos or "data/activitynet/videos")
    init = "{workdir}/tsp_init/params" if runlocal else _local_absolute(sw.init or "weights/tsp")
    concepts = "{workdir}/text/concepts.json"
    members = 2 if runlocal else sw.members
    local = ",runlocal" if runlocal else ""
    encoder = _TINY_ENCODER if runlocal else {}
    extract = _TINY_EXTRACT if runlocal else {}
    model = _TINY_CAPTIONER if runlocal else {}

    steps = []
    if runlocal:
        steps.append({"name": "data", "workdir": "data",
                      "config": f"configs/data/activitynet_subset.py:source={source}"})
    steps.append({"name": "text", "workdir": "text",
                  "config": f"configs/data/text_activitynet.py:data_dir={captions},"
                            f"top_n={sw.concepts}",
                  "overrides": {"workers": 1} if runlocal else {}})

    if sw.features:
        features = _local_absolute(sw.features)
        source_switch = f"h5={features}" if features.endswith(".h5") else f"features={features}"
        dim = sw.dim
        feature_name = "given features"
    else:
        feature_name = "SA-TSP features"
        source_switch = "features={workdir}/features_sa_tsp/features"
        dim = _TINY_DIM if runlocal else 512
        steps.append({"name": "shards", "workdir": "shards",
                      "config": f"configs/data/shards_activitynet.py:data={data},"
                                f"videos={videos},concepts={concepts}{local}"})
        if runlocal:
            # Stands in for the released TSP weights: the TSP objective (no semantic loss, no
            # GVF) for a few steps, exported in the import_torch format.
            steps.append({"name": "tsp_init", "workdir": "tsp_init",
                          "config": "configs/sa_tsp/activitynet.py:root={workdir},"
                                    f"objective=tsp,concepts={sw.concepts}{local}",
                          # No validation pass: nothing reads its numbers.
                          "overrides": {**encoder, "model.use_gvf": False, "gvf_path": "",
                                        "data.concept_vocab": concepts,
                                        "data.val_shards": ""}})
        gvf = _local_absolute(sw.gvf) if sw.gvf else "{workdir}/features_tsp/gvf_max.h5"
        if not sw.gvf:
            steps.append({"name": "gvf", "workdir": "features_tsp",
                          "config": "configs/sa_tsp/extract_activitynet.py:root={workdir},"
                                    f"params={init}",
                          "overrides": extract})
        steps += [
            {"name": "sa_tsp", "workdir": "sa_tsp",
             "config": "configs/sa_tsp/activitynet.py:root={workdir},"
                       f"init={init},gvf={gvf},concepts={sw.concepts}{local}",
             "overrides": {**encoder, "data.concept_vocab": concepts}},
            {"name": "features", "workdir": "features_sa_tsp",
             "config": "configs/sa_tsp/extract_activitynet.py:root={workdir},"
                       "params={workdir}/sa_tsp/params",
             "overrides": extract},
        ]

    tiny = ",devices=1,epochs=2,eval_every=2" if runlocal else ""
    captioner = (f"configs/captioner/activitynet.py:captions={captions},{source_switch},"
                 f"dim={dim}{local}{tiny}")
    steps += [
        {"name": "captioner", "workdir": "captioner", "config": captioner, "overrides": model},
        {"name": "predict", "workdir": "captioner", "config": f"{captioner},predict",
         "overrides": model,
         "report": {"table": "Learned proposals (val_1 + val_2 references)",
                    "row": f"captioner ({feature_name})", "key": "", "per_tiou": True}},
    ]
    gt_table = "GT proposals (val_1 + val_2 references)"
    for seed in range(members):
        workdir = f"captioner_gt_seed{seed}"
        steps += [
            {"name": workdir, "workdir": workdir, "config": f"{captioner},mode=gt,seed={seed}",
             "overrides": model},
            {"name": f"predict_gt_seed{seed}", "workdir": workdir,
             "config": f"{captioner},mode=gt,seed={seed},predict", "overrides": model,
             "report": {"table": gt_table, "row": f"captioner seed {seed}", "key": ""}},
        ]
    scst_tiny = ",devices=1,scst_steps=4,eval_every=4,val_frac=0.5" if runlocal else ""
    scst_table = "SCST (GT proposals, held-out val videos)"
    steps += [
        {"name": "scst", "workdir": "captioner_scst",
         "config": f"configs/captioner/activitynet_scst.py:captions={captions},{source_switch},"
                   f"dim={dim},init={{workdir}}/captioner_gt_seed0{local}{scst_tiny}",
         "overrides": model,
         "report": [{"table": scst_table, "row": "XE (before SCST)", "key": "xe"},
                    {"table": scst_table, "row": "XE + SCST", "key": "final"}]},
        {"name": "ensemble", "workdir": "ensemble",
         "config": f"configs/ensemble/activitynet.py:root={{workdir}},data={captions},"
                   "members=" + "+".join(f"gt_seed{i}" for i in range(members)),
         "report": {"table": gt_table, "row": f"ensemble of the {members} (concepts, then max "
                    "IDF)", "key": "metrics.ensemble"}},
        {"name": "evaluate", "workdir": "evaluate",
         "config": "configs/evaluate.py:soda" + local,
         "overrides": {"submission": "{workdir}/captioner/predictions/val_1.json",
                       "references": [f"{captions}/val_1.json", f"{captions}/val_2.json"]},
         "report": {"table": "Official evaluator (val_1 + val_2 references)",
                    "row": f"captioner ({feature_name}), learned proposals", "key": ""}},
    ]

    c = ml_collections.ConfigDict()
    c.stage = "pipeline"
    c.run = run_block()
    c.force = ""
    c.only = ""
    c.report = "metric_tables"  # data_prep/orchestration/registry.py REPORTS
    c.steps = steps
    return c
