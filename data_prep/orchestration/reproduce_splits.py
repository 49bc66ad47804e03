"""Stage "reproduce_splits": the report's protocol of Table 2 on a captions data set.

The validation videos (of `val_captions[0]`) are split three ways, deterministically from
`seed` (a seeded permutation of the sorted video ids, then consecutive blocks):
  enlarge  (`fractions[0]` of val): appended to the training captions (the report appended
           ~80% of ActivityNet val: "+ enlarged training set");
  select   (`fractions[1]`): the only split used to choose anything (SCST checkpoint, the
           ensemble size M); never scored;
  scored   (the rest): every number of the reproduce tables is measured here.
Writes to the workdir (ActivityNet Captions JSON, atomically): `train_enlarged.json` (train +
enlarge, enlarge videos with their `val_captions[0]` annotation), for each of select / scored
one file per validation annotation (`select_1.json`, `select_2.json`, ... = the subsets of
`val_captions[0]`, `val_captions[1]`, ...), and `splits.json` (the ids of each part, the seed,
the fractions). Returns the counts.
"""
from __future__ import annotations

import numpy as np

from data_prep.infra import distributed, paths
from data_prep.infra.atomic_files import atomic_write_json, read_json

PARTS = ("enlarge", "select", "scored")


def split_ids(video_ids, fractions, seed: int) -> dict[str, list[str]]:
    """{enlarge, select, scored: sorted ids}; blocks of a seeded permutation of the sorted
    ids (the same on every machine: numpy's PCG64 stream for `seed`)."""
    ids = sorted(video_ids)
    f_enlarge, f_select = (float(f) for f in fractions)
    if f_enlarge < 0 or f_select <= 0 or f_enlarge + f_select >= 1:
        raise ValueError(f"reproduce_splits: fractions {tuple(fractions)} must be >= 0, > 0 and "
                         "sum to < 1 (the rest is the scored split)")
    order = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    n_enlarge = int(round(f_enlarge * len(ids)))
    n_select = max(1, int(round(f_select * len(ids))))
    if n_enlarge + n_select >= len(ids):
        raise ValueError(f"reproduce_splits: {len(ids)} validation videos leave none to score "
                         f"with fractions {tuple(fractions)}")
    blocks = (order[:n_enlarge], order[n_enlarge:n_enlarge + n_select],
              order[n_enlarge + n_select:])
    return {part: sorted(block) for part, block in zip(PARTS, blocks)}


def run(config, workdir: str) -> dict:
    """Stage entry point (module docstring). Config: train_captions, val_captions (list: the
    first annotation decides the videos), fractions (enlarge, select), seed."""
    train = read_json(config.train_captions)
    vals = [read_json(p) for p in config.val_captions]
    if not vals:
        raise ValueError("reproduce_splits: config.val_captions lists no file")
    parts = split_ids(list(vals[0]), config.fractions, int(config.seed))
    overlap = set(train) & set(parts["enlarge"])
    if overlap:
        raise ValueError(f"reproduce_splits: {len(overlap)} videos are in both "
                         f"{config.train_captions} and the validation file, e.g. "
                         f"{sorted(overlap)[:3]}")
    if distributed.is_main_process():
        enlarged = dict(train)
        enlarged.update({v: vals[0][v] for v in parts["enlarge"]})
        atomic_write_json(paths.join(workdir, "train_enlarged.json"), enlarged)
        for part in ("select", "scored"):
            for number, val in enumerate(vals, 1):
                atomic_write_json(paths.join(workdir, f"{part}_{number}.json"),
                                  {v: val[v] for v in parts[part] if v in val})
        atomic_write_json(paths.join(workdir, "splits.json"),
                          {"seed": int(config.seed), "fractions": list(config.fractions),
                           "train_videos": len(train), **parts})
    return {"train": len(train), **{part: len(ids) for part, ids in parts.items()}}
