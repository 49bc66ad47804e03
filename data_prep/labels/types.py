"""The per-video label table shared by the shard writer, the pipelines and the trainers.

Times are in seconds. A "segment" is a TSP segment: an action instance or a background gap
between instances (TSP's "No action" rows). An "event" is a captioned event of the dense
captioning annotations; its concept ids index the semantic-concept vocabulary.
"""
from __future__ import annotations

import dataclasses

import numpy as np

# TSP: background clips carry this action label and are ignored by the action loss.
IGNORE_INDEX = -1
# TSP's temporal_region_label_mapping.json is ["Action", "No action"].
REGION_ACTION = 0
REGION_BACKGROUND = 1


@dataclasses.dataclass
class VideoLabels:
    """Labels of one video.

    Attributes:
      video_id: id as in the caption files (e.g. `v_QOlSCBRmfWY`).
      duration: video duration [s].
      segments: float32 [S, 2] (start, end) [s] of action instances and background gaps.
      action_labels: int32 [S], class index, IGNORE_INDEX for background segments.
      region_labels: int32 [S], REGION_ACTION or REGION_BACKGROUND.
      event_segments: float32 [E, 2] (start, end) [s] of the captioned events.
      event_concepts: list of E int32 arrays, the concept ids of each event's caption(s).
    """

    video_id: str
    duration: float
    segments: np.ndarray
    action_labels: np.ndarray
    region_labels: np.ndarray
    event_segments: np.ndarray
    event_concepts: list[np.ndarray]

    def __post_init__(self):
        self.segments = np.asarray(self.segments, np.float32).reshape(-1, 2)
        self.action_labels = np.asarray(self.action_labels, np.int32).reshape(-1)
        self.region_labels = np.asarray(self.region_labels, np.int32).reshape(-1)
        self.event_segments = np.asarray(self.event_segments, np.float32).reshape(-1, 2)
        self.event_concepts = [np.asarray(c, np.int32).reshape(-1) for c in self.event_concepts]
        n = len(self.segments)
        if len(self.action_labels) != n or len(self.region_labels) != n:
            raise ValueError(
                f"video {self.video_id}: {n} segments but {len(self.action_labels)} action "
                f"and {len(self.region_labels)} region labels"
            )
        if len(self.event_concepts) != len(self.event_segments):
            raise ValueError(
                f"video {self.video_id}: {len(self.event_segments)} events but "
                f"{len(self.event_concepts)} concept lists"
            )
