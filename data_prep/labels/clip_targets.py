"""Per-clip targets from a video's `VideoLabels`: concept multi-hot, action and region labels.

Concept targets (SA-TSP's semantic concept classification): the union of the concepts of
the captioned events that overlap the clip. "Overlap" is a rule (the report does not say):
  "any_overlap"             the clip and the event share a positive length of time;
  "center_inside"           the clip's centre lies in [event start, event end];
  "min_overlap_frac=F"      intersection / clip length >= F (0 < F <= 1), e.g. 0.5.
Events are the caption annotations' own intervals; a clip outside every event (background)
gets an all-zero target.
"""
from __future__ import annotations

import numpy as np

from data_prep.labels.types import IGNORE_INDEX, REGION_ACTION, REGION_BACKGROUND, VideoLabels

OVERLAP_RULES = ("any_overlap", "center_inside", "min_overlap_frac=F")


def parse_rule(rule: str) -> tuple[str, float]:
    """"min_overlap_frac=0.5" -> ("min_overlap_frac", 0.5); others -> (rule, 0.0)."""
    if rule in ("any_overlap", "center_inside"):
        return rule, 0.0
    name, _, value = rule.partition("=")
    if name == "min_overlap_frac":
        try:
            frac = float(value)
        except ValueError:
            frac = -1.0
        if 0.0 < frac <= 1.0:
            return name, frac
    raise ValueError(f"unknown overlap rule {rule!r}; use one of {OVERLAP_RULES} "
                     "with 0 < F <= 1")


def clip_event_overlap(clip_starts: np.ndarray, clip_ends: np.ndarray,
                       event_segments: np.ndarray, rule: str) -> np.ndarray:
    """Which events count as overlapping which clips.

    Args:
      clip_starts, clip_ends: float [N] clip bounds [s].
      event_segments: float [E, 2] (start, end) [s].
      rule: see the module docstring.
    Returns:
      bool [N, E].
    """
    name, frac = parse_rule(rule)
    cs = np.asarray(clip_starts, np.float64).reshape(-1, 1)
    ce = np.asarray(clip_ends, np.float64).reshape(-1, 1)
    ev = np.asarray(event_segments, np.float64).reshape(-1, 2)
    es, ee = ev[None, :, 0], ev[None, :, 1]
    if name == "center_inside":
        center = 0.5 * (cs + ce)
        return (center >= es) & (center <= ee)
    inter = np.minimum(ce, ee) - np.maximum(cs, es)
    if name == "any_overlap":
        return inter > 0
    length = np.maximum(ce - cs, 1e-9)
    return inter / length >= frac - 1e-9


def clip_concept_targets_batch(clip_starts, clip_ends, labels: VideoLabels, num_concepts: int,
                               rule: str = "any_overlap") -> np.ndarray:
    """float32 [N, num_concepts] multi-hot targets of N clips of one video."""
    overlap = clip_event_overlap(clip_starts, clip_ends, labels.event_segments, rule)
    event_hot = np.zeros((len(labels.event_concepts), num_concepts), np.float32)
    for e, ids in enumerate(labels.event_concepts):
        if len(ids) and (ids.min() < 0 or ids.max() >= num_concepts):
            raise ValueError(f"video {labels.video_id}: event {e} has concept ids outside "
                             f"[0, {num_concepts})")
        event_hot[e, ids] = 1.0
    # Union over overlapping events: a matrix product of 0/1 values, then clipped to 1.
    return np.minimum(overlap.astype(np.float32) @ event_hot, 1.0)


def clip_concept_targets(clip_start_s: float, clip_end_s: float, labels: VideoLabels,
                         num_concepts: int, rule: str = "any_overlap") -> np.ndarray:
    """float32 [num_concepts] multi-hot target of the clip [clip_start_s, clip_end_s]."""
    return clip_concept_targets_batch([clip_start_s], [clip_end_s], labels, num_concepts,
                                      rule)[0]


def clip_action_region(clip_start_s: float, clip_end_s: float,
                       labels: VideoLabels) -> tuple[int, int]:
    """(action label, region label) of a clip by where its centre falls.

    For clips not sampled from a known segment (e.g. sliding windows): the segment that
    contains the clip centre gives the labels; among several (overlapping action instances)
    the one overlapping the clip most; a centre in no segment, or only in background
    segments, gives (IGNORE_INDEX, REGION_BACKGROUND).
    """
    center = 0.5 * (clip_start_s + clip_end_s)
    segs = labels.segments
    inside = (segs[:, 0] <= center) & (center <= segs[:, 1])
    inside &= labels.region_labels == REGION_ACTION
    if not inside.any():
        return IGNORE_INDEX, REGION_BACKGROUND
    inter = np.minimum(segs[:, 1], clip_end_s) - np.maximum(segs[:, 0], clip_start_s)
    best = int(np.argmax(np.where(inside, inter, -np.inf)))
    return int(labels.action_labels[best]), REGION_ACTION
