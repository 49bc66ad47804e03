"""Builds `VideoLabels` (TSP segments + captioned events with concept ids) per video.

Segments follow TSP (HumamAlwassel/TSP `UntrimmedVideoDataset`): the ground-truth CSV rows,
i.e. the action instances and the background gaps ("No action", action label ignored),
clipped to the video, and segments shorter than one clip (16 frames at 15 fps = 1.067 s by
default) dropped, because no clip fits in them. Events are the captioned events of the
ActivityNet Captions file(s), with the concept ids of their sentence.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

import numpy as np

from data_prep.annotations.activitynet_captions import VideoCaptions, read_captions
from data_prep.annotations.errors import AnnotationError
from data_prep.annotations.tsp_csv import (
    TspSegment,
    VideoMetadata,
    caption_video_id,
    group_by_video,
    read_label_mapping,
    read_tsp_groundtruth,
    read_tsp_metadata,
)
from data_prep.labels.types import IGNORE_INDEX, REGION_ACTION, REGION_BACKGROUND, VideoLabels

log = logging.getLogger(__name__)

TSP_CLIP_SECONDS = 16 / 15  # TSP: 16 frames at 15 fps


def _as_caption_maps(captions) -> list[Mapping[str, VideoCaptions]]:
    if captions is None:
        return []
    if isinstance(captions, str | os.PathLike):
        return [read_captions(captions)]
    if isinstance(captions, Mapping):
        return [captions]
    return [c for item in captions for c in _as_caption_maps(item)]


def _event_concepts(caption_maps, concepts, sentence_concepts) -> dict[str, list]:
    """Concept ids of every sentence, per video, in caption-file order."""
    out: dict[str, list] = {}
    if sentence_concepts is not None:
        tables = sentence_concepts if isinstance(sentence_concepts, Sequence) else [
            sentence_concepts]
        if len(tables) != len(caption_maps):
            raise ValueError(f"{len(tables)} sentence-concept tables for "
                             f"{len(caption_maps)} caption files")
        for table, cmap in zip(tables, caption_maps):
            for vid, v in cmap.items():
                ids = table.get(vid)
                if ids is None or len(ids) != len(v.sentences):
                    raise ValueError(f"sentence concepts of video {vid!r} do not match its "
                                     f"{len(v.sentences)} sentences")
                out.setdefault(vid, []).extend(np.asarray(i, np.int32) for i in ids)
        return out
    flat = [(vid, s) for cmap in caption_maps for vid, v in cmap.items() for s in v.sentences]
    if concepts is None:
        ids = [np.zeros(0, np.int32)] * len(flat)
    else:
        ids = concepts.concept_ids([s for _, s in flat])
    for (vid, _), i in zip(flat, ids):
        out.setdefault(vid, []).append(i)
    return out


def build_video_labels(
    groundtruth: str | os.PathLike | Sequence[TspSegment],
    action_labels: str | os.PathLike | Sequence[str],
    captions=None,
    concepts=None,
    metadata: str | os.PathLike | Mapping[str, VideoMetadata] | None = None,
    min_segment_s: float = TSP_CLIP_SECONDS,
    sentence_concepts=None,
) -> dict[str, VideoLabels]:
    """Labels of every video of a TSP ground-truth CSV, keyed by caption id (`v_...`).

    Args:
      groundtruth: `*_tsp_groundtruth.csv` path or its rows.
      action_labels: the action label mapping (JSON path or list; index = label id).
      captions: ActivityNet Captions file(s) (path, mapping, or a list of them, e.g. val_1
        and val_2: events of all are concatenated). Videos without captions get no events.
      concepts: a `ConceptVocab` to compute each sentence's concept ids (None and no
        `sentence_concepts`: events get empty concept lists).
      metadata: `*_metadata.csv` (path or mapping by `v_` id); when given, its duration
        is the video duration (TSP's metadata describes the decoded files); else the
        ground truth's `video-duration`.
      min_segment_s: segments shorter than this [s] are dropped (TSP: one clip).
      sentence_concepts: precomputed ids ({video_id: [[ids], ...]} per caption file, as the
        text stage writes), instead of tagging again.
    """
    gt_path = str(groundtruth) if isinstance(groundtruth, str | os.PathLike) else "<rows>"
    rows = read_tsp_groundtruth(groundtruth) if gt_path != "<rows>" else list(groundtruth)
    if isinstance(action_labels, str | os.PathLike):
        action_labels = read_label_mapping(action_labels)
    label_index = {name: i for i, name in enumerate(action_labels)}
    if isinstance(metadata, str | os.PathLike):
        metadata = read_tsp_metadata(metadata)
    caption_maps = _as_caption_maps(captions)
    event_sets = [(vid, v) for cmap in caption_maps for vid, v in cmap.items()]
    concept_lists = _event_concepts(caption_maps, concepts, sentence_concepts)

    events_by_video: dict[str, list[np.ndarray]] = {}
    for vid, v in event_sets:
        events_by_video.setdefault(vid, []).extend(np.asarray(v.timestamps).reshape(-1, 2))

    out: dict[str, VideoLabels] = {}
    dropped = 0
    for name, segs in group_by_video(rows).items():
        vid = caption_video_id(name)
        duration = segs[0].video_duration
        if metadata is not None and vid in metadata:
            duration = metadata[vid].video_duration
        if duration <= 0:
            raise AnnotationError(gt_path, name, "video-duration", f"must be > 0, got {duration}")
        seg_list, actions, regions = [], [], []
        for s in segs:
            start, end = max(0.0, s.t_start), min(duration, s.t_end)
            if end - start < min_segment_s:
                dropped += 1
                continue
            if s.region_label == "Action":
                if s.action_label not in label_index:
                    raise AnnotationError(gt_path, name, "action-label",
                                          f"{s.action_label!r} is not in the label mapping")
                actions.append(label_index[s.action_label])
                regions.append(REGION_ACTION)
            else:
                actions.append(IGNORE_INDEX)
                regions.append(REGION_BACKGROUND)
            seg_list.append((start, end))
        events = events_by_video.get(vid, [])
        event_segments = np.clip(np.asarray(events, np.float64).reshape(-1, 2), 0.0, duration)
        out[vid] = VideoLabels(
            video_id=vid, duration=float(duration),
            segments=np.asarray(seg_list, np.float32).reshape(-1, 2),
            action_labels=actions, region_labels=regions,
            event_segments=event_segments, event_concepts=concept_lists.get(vid, []),
        )
    log.info("%s: labels of %d videos, %d segments shorter than %.3f s dropped", gt_path,
             len(out), dropped, min_segment_s)
    return out
