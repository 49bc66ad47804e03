"""`evaluate_submission`: the one call for all dense-captioning numbers.

Cheap to call repeatedly in one process (the trainer evaluates every few epochs): the METEOR
jar is started once and reused (`get_meteor`), tokenization is one Java call per evaluation.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from captioner_jax.evaluation.dense_captioning import DEFAULT_TIOUS, score_captions
from captioner_jax.evaluation.meteor import default_num_jars, get_meteor, get_meteor_pool
from captioner_jax.evaluation.submission import (
    SubmissionError,
    load_references,
    load_submission,
    note_scored_inputs,
    report_unknown_videos,
)
from captioner_jax.evaluation.token_cache import default_cache_dir

log = logging.getLogger(__name__)


def evaluate_submission(
    submission,
    references,
    *,
    version: str = "2018",
    tious: Sequence[float] = DEFAULT_TIOUS,
    max_proposals: int = 1000,
    soda: bool = False,
    para_references=None,
    lenient: bool = False,
    official_inputs: bool = False,
    hash_seed: int | None = None,
    video_order=None,
    reference_cache: bool = False,
    cache_dir: str | None = None,
    meteor_jars: int | None = None,
    python2_split: bool = False,
) -> dict:
    """Official ActivityNet dense-captioning metrics of a submission.

    submission: path of a submission JSON or the loaded dict
      (`{"results": {video: [{"sentence", "timestamp": [s, e]}]}, "version", "external_data"}`).
    references: one or more reference files (paths or loaded dicts), e.g. val_1 and val_2.
    version: "2018" (densevid_eval deba7d7, garbage 'abc123!@#') or "latest" (9d4045a).
    tious: thresholds; max_proposals: first N predictions per video in file order.
    soda: also compute PDVC's SODA_c (per reference file, averaged).
    para_references: paragraph reference files (PDVC paragraph protocol) or None.
    lenient: drop bad entries with a warning instead of raising `SubmissionError`.
    official_inputs: score every entry the official script scores, as it scores it (NaN /
      inf bounds, `[s, e, score]` timestamps; see `submission` module doc) instead of
      rejecting it. Paths may be local or `gs://` (path layer).
    hash_seed: visit videos in the order of an official run with PYTHONHASHSEED=hash_seed
      (it changes the tokenizer's look-ahead at video boundaries); None: sorted ids.
    video_order: the video ids in the order to visit them (every reference video once; e.g.
      a Python 2 official run's order), instead of `hash_seed`'s.
    reference_cache / cache_dir: remember the PTB tokens of reference lines across
      evaluations (`token_cache`; the same numbers) in `cache_dir`, or in
      `$XDG_CACHE_HOME/sa_tsp_dvc` when only `reference_cache` is set. Off by default: on
      full val_1 + val_2 reading and rewriting the cache file measured slower than the
      tokenizer work it saves (benchmarks/evaluate_vs_official.py).
    meteor_jars: METEOR jars sharing the pairs (`MeteorPool`; same numbers); None: the
      shared process, scoring on a thread per core where a JDK is present
      (`meteor.default_num_jars`), else one jar per core (at most 4) from 20k predictions on.
    python2_split: equal the original Python 2 densevid_eval where a PTB token holds a
      no-break space (BLEU / CIDEr-D; see `score_captions`); default: the Python 3 ports.

    Returns (all scores x100, as the official script prints them): "Bleu_1".."Bleu_4",
    "METEOR", "ROUGE_L", "CIDEr", "Recall", "Precision" averaged over `tious`; "per_tiou"
    {tiou: {metric: value}}; "SODA_c" (and "SODA_c_precision"/"SODA_c_recall") when asked;
    "para_Bleu_1".."para_CIDEr" when `para_references` is given; bookkeeping counts.
    """
    if not tious:
        raise ValueError("at least one tIoU threshold is needed")
    if max_proposals <= 0:
        raise ValueError(f"max_proposals must be positive, got {max_proposals}")
    start = time.perf_counter()
    # The first METEOR jar loads (about 8 CPU-seconds, in its own process) while the files
    # are read and checked (nothing is scored without a prediction: a rare jar for nothing).
    get_meteor()
    files, _ = load_references(references)
    ref_ids = set().union(*[f.keys() for f in files])
    sub = load_submission(submission, lenient=lenient, official_inputs=official_inputs,
                          reference_ids=ref_ids, max_proposals=max_proposals)
    unknown = report_unknown_videos(sub, ref_ids)
    notes = note_scored_inputs(sub, files, max_proposals)
    if soda and sub.official_only:
        raise SubmissionError(
            f"{sub.source}: SODA_c needs finite numeric [start, end] timestamps (fujiso/SODA "
            f"unpacks two values and sorts by start time); {sub.official_only} entries have "
            f"non-finite, boolean or >2-element timestamps (accepted by --official-inputs for "
            f"the caption metrics only)")
    num_predictions = sum(min(len(v.sentences), max_proposals) for v in sub.videos.values())
    meteor = None
    if num_predictions:
        jars = meteor_jars or default_num_jars(num_predictions)
        meteor = get_meteor_pool(jars) if jars > 1 else get_meteor()
    out = score_captions(sub, files, version=version, tious=tious,
                         max_proposals=max_proposals, meteor=meteor, hash_seed=hash_seed,
                         video_order=video_order, python2_split=python2_split,
                         cache_dir=cache_dir or (default_cache_dir() if reference_cache
                                                 else None))
    out["version"] = version
    out["input_mode"] = ("official_inputs" if official_inputs else "strict") + (
        "+lenient" if lenient else "")
    out["num_unknown_videos"] = len(unknown)
    out["num_dropped_entries"] = sub.dropped_entries
    out["num_official_only_entries"] = sub.official_only
    out["input_notes"] = {k: dict(v) for k, v in notes.items()}
    if soda:
        from captioner_jax.evaluation.soda import soda_c_per_file

        out.update(soda_c_per_file(sub, files, meteor=meteor or get_meteor(),
                                   hash_seed=hash_seed))
    if para_references is not None:
        from captioner_jax.evaluation.paragraph import (
            load_paragraph_references,
            paragraph_scores,
        )

        para_files, _ = load_paragraph_references(para_references)
        out.update(paragraph_scores(sub, para_files, meteor=meteor or get_meteor()))
    out["seconds"] = time.perf_counter() - start
    return out

