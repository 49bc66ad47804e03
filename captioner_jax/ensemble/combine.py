"""Align M captioners' predictions on one fixed set of proposals and pick one caption each.

Input: M submission dicts in the official format (`{"results": {video_id: [{"sentence",
"timestamp": [start_s, end_s], ...}]}}`), each produced by one model captioning the *same*
proposals (GT segments, or one chosen model's predicted segments fed to every model).
Proposals are matched across models by their timestamps rounded to `TIME_DECIMALS`; when a
video holds the same segment several times (GT files do), the k-th occurrence in one model is
matched to the k-th occurrence in another, in file order.

Output: the ensemble's submission (one entry per proposal, in the proposals' order) and a
per-proposal record of the winning model and every candidate's score.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence

from captioner_jax.ensemble.selection import Candidate, CaptionStatistics, Rule, select

TIME_DECIMALS = 3  # 1 ms: far below any segment boundary precision in the annotations.

Segment = tuple[float, float]


def segment_key(timestamp: Sequence[float]) -> Segment:
    return (round(float(timestamp[0]), TIME_DECIMALS), round(float(timestamp[1]), TIME_DECIMALS))


def proposals_from_captions(captions: Mapping[str, Mapping]) -> dict[str, list[Segment]]:
    """GT proposals from an ActivityNet Captions dict `{vid: {"timestamps": [[s, e], ...]}}`."""
    out = {}
    for vid, entry in captions.items():
        if "timestamps" not in entry:
            raise ValueError(f"proposals: video {vid!r} has no field 'timestamps'")
        out[vid] = [(float(s), float(e)) for s, e in entry["timestamps"]]
    return out


def proposals_from_submission(submission: Mapping) -> dict[str, list[Segment]]:
    """Proposals = the segments of one model's predictions, in its file order."""
    return {
        vid: [(float(p["timestamp"][0]), float(p["timestamp"][1])) for p in preds]
        for vid, preds in submission["results"].items()
    }


def _index_predictions(
    submission: Mapping, name: str, logprob_field: str | None, per_word: bool = False
) -> dict[str, dict[Segment, list[tuple[str, float | None]]]]:
    """video -> segment key -> [(sentence, mean log-prob)] in file order.

    `per_word`: the field holds a sum over the caption's words (the captioner's
    "sentence_score"); divide it by the number of words to get a mean."""
    if "results" not in submission:
        raise ValueError(f"predictions of model {name!r}: missing key 'results'")
    index: dict[str, dict[Segment, list]] = {}
    for vid, preds in submission["results"].items():
        per_seg: dict[Segment, list] = collections.defaultdict(list)
        for i, p in enumerate(preds):
            try:
                key = segment_key(p["timestamp"])
                sentence = str(p["sentence"])
            except (KeyError, TypeError, IndexError, ValueError) as err:
                logging.warning(
                    "ensemble: model %s, video %s, prediction %d skipped: bad field (%r)",
                    name, vid, i, err,
                )
                continue
            lp = p.get(logprob_field) if logprob_field else None
            lp = None if lp is None else float(lp)
            if lp is not None and per_word:
                lp /= max(len(sentence.split()), 1)
            per_seg[key].append((sentence, lp))
        index[vid] = dict(per_seg)
    return index


@dataclasses.dataclass
class EnsembleResult:
    """Attributes:
    submission: official submission dict of the ensemble.
    choices: video -> list of {"timestamp", "winner", "winner_name", "scores"} per proposal.
    wins: model name -> number of proposals it won.
    missing: number of (proposal, model) pairs for which a model had no caption.
    dropped: proposals that no model captioned (left out of the submission).
    """

    submission: dict
    choices: dict[str, list[dict]]
    wins: dict[str, int]
    missing: int
    dropped: int


def ensemble_predictions(
    proposals: Mapping[str, Sequence[Segment]],
    predictions: Sequence[Mapping],
    model_names: Sequence[str],
    rule: Rule,
    stats: CaptionStatistics,
    *,
    logprob_field: str | None = None,
    logprob_per_word: bool = False,
    version: str = "VERSION 1.0",
) -> EnsembleResult:
    """Selects one caption per proposal among the M models' captions (see module docstring)."""
    if len(predictions) != len(model_names):
        raise ValueError(f"{len(predictions)} prediction sets but {len(model_names)} names")
    indices = [
        _index_predictions(sub, name, logprob_field, logprob_per_word)
        for sub, name in zip(predictions, model_names)
    ]
    prefetch = getattr(stats, "prefetch", None)
    if prefetch is not None:  # batch the POS tagging of every candidate sentence
        prefetch([s for index in indices for per_seg in index.values()
                  for entries in per_seg.values() for s, _ in entries])
    results: dict[str, list[dict]] = {}
    choices: dict[str, list[dict]] = {}
    wins = {name: 0 for name in model_names}
    missing = dropped = 0
    for vid, segments in proposals.items():
        seen: collections.Counter = collections.Counter()
        results[vid], choices[vid] = [], []
        for seg in segments:
            key = segment_key(seg)
            occurrence = seen[key]
            seen[key] += 1
            candidates = []
            for m, index in enumerate(indices):
                entries = index.get(vid, {}).get(key, [])
                if occurrence < len(entries):
                    sentence, lp = entries[occurrence]
                    candidates.append(Candidate(model=m, sentence=sentence, mean_logprob=lp))
                else:
                    missing += 1
            if not candidates:
                dropped += 1
                continue
            winner, scores = select(candidates, rule, stats)
            wins[model_names[winner.model]] += 1
            results[vid].append({"sentence": winner.sentence, "timestamp": [seg[0], seg[1]]})
            choices[vid].append(
                {
                    "timestamp": [seg[0], seg[1]],
                    "winner": winner.model,
                    "winner_name": model_names[winner.model],
                    "candidates": [
                        {
                            "model": c.model,
                            "sentence": c.sentence,
                            "score": [s if math.isfinite(s) else None for s in score],
                        }
                        for c, score in zip(candidates, scores)
                    ],
                }
            )
    if missing:
        logging.warning("ensemble: %d (proposal, model) pairs had no caption", missing)
    if dropped:
        logging.warning("ensemble: %d proposals had no caption from any model", dropped)
    submission = {
        "version": version,
        "results": results,
        "external_data": {"used": False, "details": "ensemble of " + ", ".join(model_names)},
    }
    return EnsembleResult(submission, choices, wins, missing, dropped)
