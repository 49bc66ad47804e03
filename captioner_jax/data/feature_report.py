"""Bad feature files, reported once per stage (captioner_train, captioner_predict, SCST).

Before a captioner stage reads its batches it checks every video's features with the stage's
own `FeatureLoader` (`scan_features`): a missing file, an unreadable or truncated `.npy`, a
wrong shape or channel count, NaN/inf values. `report_feature_problems` writes them all to
`workdir/feature_problems.json`:

  {"stage": str, "videos_checked": int, "num_problems": int,
   "problems": [{"video_id", "source", "file", "kind": "missing" | "corrupt", "error",
                 "split"}]}

(also when there are none, so a rerun's report never lingers from an older run), logs one
warning with the count and the file, and returns the count for the stage's result. Without
the strict flag the stage goes on as before: a missing video is zero-filled (PDVC) when the
config says so, a corrupt one is left out (trainers drop it from their splits up front
instead of skipping it in every epoch; prediction leaves it out of the submission). With
the strict flag (`config.data.strict_features`) any problem stops the stage with
`CorruptFeatureError` naming the report (launch.py: exit status 1).

Cost: one extra read of every feature file (threads; small next to training or prediction).
Multi-host: each process checks every process_count-th video; the lists are gathered and
process 0 writes the report.
"""
from __future__ import annotations

import concurrent.futures as cf
import logging
from collections.abc import Sequence

from captioner_jax.data.features import CorruptFeatureError, FeatureLoader
from data_prep.infra import distributed, paths
from data_prep.infra.atomic_files import atomic_write_json

log = logging.getLogger(__name__)

REPORT_NAME = "feature_problems.json"


def _check_video(loader: FeatureLoader, video_id: str) -> list[dict]:
    problems = []
    for source in loader.sources:
        where = loader.describe(source, video_id)
        try:
            if not loader.exists(source, video_id):
                fill = " (zero-filled)" if loader.zero_fill_missing else ""
                problems.append({"video_id": video_id, "source": source.name, "file": where,
                                 "kind": "missing", "error": f"no feature file{fill}"})
                continue
            loader.load_source(source, video_id)
        except Exception as err:  # noqa: BLE001 - every failure of one file is reported
            problems.append({"video_id": video_id, "source": source.name, "file": where,
                             "kind": "corrupt", "error": f"{type(err).__name__}: {err}"})
    return problems


def scan_features(loader: FeatureLoader, video_ids: Sequence[str], threads: int = 8
                  ) -> list[dict]:
    """Problems of the features of `video_ids` (this process's share of them on several
    processes; the gathered list on every process), in the order of `video_ids`.

    The first video is read alone: the loader takes the channel count of each source from the
    first file it reads, as the stage's own reading does.
    """
    import jax

    ids = list(video_ids)
    mine = ids[jax.process_index()::jax.process_count()]
    found: dict[str, list[dict]] = {}
    if ids:
        found[ids[0]] = _check_video(loader, ids[0])
    rest = [v for v in mine if v != ids[0]] if ids else []
    with cf.ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for vid, problems in zip(rest, pool.map(lambda v: _check_video(loader, v), rest)):
            found[vid] = problems
    gathered: dict[str, list[dict]] = {}
    for part in distributed.allgather_objects(found):
        gathered.update(part)
    return [p for v in ids for p in gathered.get(v, [])]


def report_feature_problems(workdir: str, stage: str, problems: list[dict],
                            videos_checked: int, strict: bool) -> int:
    """Writes `workdir/feature_problems.json` (process 0), logs the count; raises
    CorruptFeatureError under `strict` when there is any problem. Returns the count."""
    path = paths.join(workdir, REPORT_NAME)
    if distributed.is_main_process():
        atomic_write_json(path, {"stage": stage, "videos_checked": int(videos_checked),
                                 "num_problems": len(problems), "problems": problems})
    if problems:
        kinds = sorted({p["kind"] for p in problems})
        log.warning("%s: %d feature file problems (%s), e.g. %s: %s; all listed in %s", stage,
                    len(problems), ", ".join(kinds), problems[0]["file"],
                    problems[0]["error"], path)
        if strict:
            raise CorruptFeatureError(
                f"{stage}: {len(problems)} videos' features are missing or corrupt (e.g. "
                f"{problems[0]['file']}: {problems[0]['error']}); every file and why: {path}. "
                "Fix or re-extract them, or run without data.strict_features to leave them out")
    return len(problems)


def check_stage_features(loader: FeatureLoader, splits: dict[str, Sequence[str]],
                         workdir: str, stage: str, data_cfg) -> tuple[int, set[str]]:
    """What a stage calls once before reading batches: `scan_features` of every split
    (`{"train": ids, "val": ids}`; each problem gets its "split"), `report_feature_problems`
    with the strict flag of `data_cfg` (`strict_features`, default False).

    Returns (number of problems, ids of the videos with a corrupt file): a trainer leaves
    those out of its splits up front instead of skipping them in every epoch.
    """
    problems = []
    for split, ids in splits.items():
        problems += [dict(p, split=split) for p in scan_features(loader, ids)]
    count = report_feature_problems(workdir, stage, problems,
                                    sum(len(ids) for ids in splits.values()),
                                    bool(data_cfg.get("strict_features", False)))
    return count, {p["video_id"] for p in problems if p["kind"] == "corrupt"}
