"""Stage "activitynet_subset": the real ActivityNet annotation files restricted to a few video
ids, with a tiny generated video for each id (the `runlocal` data of
configs/pipeline/activitynet.py, so that the real chain runs end to end in CI).

    python launch.py --config configs/data/activitynet_subset.py --workdir /tmp/anet_subset

Reads the layout of ../shared/data (`config.source`) and writes the same layout under the
workdir, so every ActivityNet config reads the subset exactly as it reads the real root:

  activitynet_captions/{train,train_modified,val_1,val_2}.json   the real entries of the ids
  activitynet_captions/vocabulary_activitynet.json               copied (PDVC's vocabulary)
  activitynet_v1.3/tsp/activitynet_v1-3_{train,valid}_{tsp_groundtruth,metadata}.csv
                                    the rows of the ids, byte for byte
  activitynet_v1.3/tsp/activitynet_v1-3_{action,temporal_region}_label_mapping.json  copied
  videos/<video_id>.mp4             a synthetic scene (data_prep.synthetic) as long as TSP's
                                    `video-duration` of the id, at `config.fps`
  subset.json                       the ids per split and the source root

The videos are generated (the real ones are YouTube downloads): only the wiring is real, the
pixels are not. Ids are `config.video_ids` when given (each goes to the split whose first
caption file holds it and must be in every file of that split: a KeyError names the file),
else the first `num_train` / `num_val` ids in sorted order that are in every file of their
split, last between `min_duration_s` and `max_duration_s` [s] (caption duration) and have at
least `min_events` captioned events.
"""
from __future__ import annotations

import csv
import dataclasses
import logging

from data_prep.infra import paths
from data_prep.infra.atomic_files import atomic_write_bytes, atomic_write_json, read_json

log = logging.getLogger(__name__)

CAPTIONS = "activitynet_captions"
TSP = "activitynet_v1.3/tsp"
# Split -> (caption files, TSP CSV split name). Val ids need val_2 too: the evaluation scores
# against val_1 and val_2.
SPLITS = {
    "train": (("train.json", "train_modified.json"), "train"),
    "val": (("val_1.json", "val_2.json"), "valid"),
}
COPIED = (f"{CAPTIONS}/vocabulary_activitynet.json",
          f"{TSP}/activitynet_v1-3_action_label_mapping.json",
          f"{TSP}/activitynet_v1-3_temporal_region_label_mapping.json")


def _csv_rows(path: str) -> tuple[str, list[tuple[dict, str]]]:
    """(header line, [(row as dict, raw line)]) of a one-line-per-row CSV file."""
    lines = paths.read_text(path).splitlines(keepends=True)
    if not lines:
        raise ValueError(f"{path}: empty CSV file")
    header = next(csv.reader([lines[0]]))
    rows = []
    for number, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        values = next(csv.reader([line]))
        if len(values) != len(header):
            raise ValueError(f"{path} line {number}: {len(values)} fields, the header has "
                             f"{len(header)} (a field spanning lines is not supported)")
        rows.append((dict(zip(header, values)), line))
    return lines[0], rows


def _tsp_files(split_name: str) -> dict[str, str]:
    """TSP CSV kind -> file name of the split (`train` or `valid`)."""
    return {kind: f"activitynet_v1-3_{split_name}_{kind}.csv"
            for kind in ("tsp_groundtruth", "metadata")}


def _caption_id(row: dict) -> str:
    """The caption id (`v_...`) of a TSP CSV row: both kinds name `<caption id>.mp4` in
    `filename` (the ground truth's `video-name` is the YouTube id, without `v_`)."""
    name = row["filename"]
    return name[: -len(".mp4")] if name.endswith(".mp4") else name


def select_ids(captions: dict[str, dict], tsp_ids: set[str], count: int, given, *,
               min_duration_s: float, max_duration_s: float, min_events: int,
               what: str) -> list[str]:
    """The ids of one split (module docstring). `captions`: file name -> loaded caption file;
    `tsp_ids`: ids in both TSP CSVs of the split; `given`: explicit ids (or empty)."""
    files = list(captions)
    if given:
        for vid in given:
            for name in files:
                if vid not in captions[name]:
                    raise KeyError(f"{what}: video {vid!r} is not in {name}")
            if vid not in tsp_ids:
                raise KeyError(f"{what}: video {vid!r} is not in the TSP CSVs of the split")
        return list(given)
    first = captions[files[0]]
    chosen = []
    for vid in sorted(first):
        entry = first[vid]
        if (vid in tsp_ids and all(vid in captions[n] for n in files[1:])
                and min_duration_s <= float(entry["duration"]) <= max_duration_s
                and len(entry["sentences"]) >= min_events):
            chosen.append(vid)
            if len(chosen) == count:
                return chosen
    raise ValueError(f"{what}: only {len(chosen)} of {count} videos of {files} last "
                     f"{min_duration_s}-{max_duration_s} s with >= {min_events} events")


def run(config, workdir: str) -> dict:
    """Writes the subset (module docstring) under `workdir`; returns {split: ids, ...}.

    Every process selects the ids (the same on all: sorted, deterministic); only process 0
    writes (the pipeline runner makes the others wait for the step)."""
    from data_prep.infra.distributed import is_main_process  # imports JAX: only when run

    source = config.source
    video_ids = list(config.video_ids)
    selected = {}
    for split, (caption_files, tsp_split) in SPLITS.items():
        captions = {n: read_json(paths.join(source, CAPTIONS, n)) for n in caption_files}
        csvs = {kind: _csv_rows(paths.join(source, TSP, name))
                for kind, name in _tsp_files(tsp_split).items()}
        per_kind = [{_caption_id(row) for row, _ in rows} for _, rows in csvs.values()]
        given = [v for v in video_ids if v in captions[caption_files[0]]]
        if video_ids and not given:
            raise ValueError(f"activitynet_subset: none of video_ids {video_ids} is in "
                             f"{paths.join(source, CAPTIONS, caption_files[0])}")
        count = int(config.num_train if split == "train" else config.num_val)
        ids = select_ids(captions, set.intersection(*per_kind), count, given,
                         min_duration_s=float(config.min_duration_s),
                         max_duration_s=float(config.max_duration_s),
                         min_events=int(config.min_events), what=f"split {split}")
        selected[split] = (ids, captions, csvs, tsp_split)
        log.info("activitynet_subset: %s ids %s", split, ids)
    unknown = sorted(set(video_ids) - {v for ids, *_ in selected.values() for v in ids})
    if unknown:
        raise KeyError(f"activitynet_subset: video_ids {unknown} are in no split's caption file "
                       f"under {paths.join(source, CAPTIONS)}")
    out = {split: ids for split, (ids, *_) in selected.items()}
    if is_main_process():
        for index_base, (ids, captions, csvs, tsp_split) in enumerate(selected.values()):
            _write_split(config, workdir, ids, captions, csvs, tsp_split, index_base)
        for rel in COPIED:
            atomic_write_bytes(paths.join(workdir, rel),
                               paths.read_bytes(paths.join(source, rel)))
        atomic_write_json(paths.join(workdir, "subset.json"), {"source": source, **out})
    return out


def _write_split(config, workdir: str, ids: list[str], captions: dict, csvs: dict,
                 tsp_split: str, index_base: int) -> None:
    """The caption entries, TSP rows and generated videos of one split's `ids`."""
    from data_prep.synthetic.generator import encode_mp4
    from data_prep.synthetic.renderer import render_frames
    from data_prep.synthetic.scene_sampler import SceneOptions, sample_video_spec

    keep = set(ids)
    for name, data in captions.items():
        atomic_write_json(paths.join(workdir, CAPTIONS, name), {vid: data[vid] for vid in ids})
    durations = {}
    for kind, (header, rows) in csvs.items():
        lines = [line for row, line in rows if _caption_id(row) in keep]
        text = header + "".join(line if line.endswith("\n") else line + "\n" for line in lines)
        atomic_write_bytes(paths.join(workdir, TSP, _tsp_files(tsp_split)[kind]),
                           text.encode("utf-8"))
        if kind == "tsp_groundtruth":
            durations.update({_caption_id(row): float(row["video-duration"])
                              for row, _ in rows if _caption_id(row) in keep})
    # Synthetic scenes as long as the real video (TSP's duration: what the shards decode).
    video_dir = paths.join(workdir, "videos")
    paths.make_dirs(video_dir)
    for i, vid in enumerate(ids):
        seconds = durations[vid]
        scene = SceneOptions(min_duration_s=seconds, max_duration_s=seconds,
                             fps=float(config.fps), height=int(config.height),
                             width=int(config.width),
                             min_event_s=min(2.0, seconds / 2))  # a 2 s video gets 1 s events
        spec = dataclasses.replace(
            sample_video_spec(int(config.seed), 1000 * index_base + i, scene), video_id=vid)
        encode_mp4(render_frames(spec), paths.join(video_dir, f"{vid}.mp4"), spec.fps)
