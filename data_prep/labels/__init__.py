"""Per-video TSP-style label tables and per-clip targets."""
from data_prep.labels.clip_targets import (
    clip_action_region,
    clip_concept_targets,
    clip_concept_targets_batch,
)
from data_prep.labels.types import IGNORE_INDEX, REGION_ACTION, REGION_BACKGROUND, VideoLabels
from data_prep.labels.video_labels import build_video_labels

__all__ = [
    "IGNORE_INDEX", "REGION_ACTION", "REGION_BACKGROUND", "VideoLabels", "build_video_labels",
    "clip_action_region", "clip_concept_targets", "clip_concept_targets_batch",
]
