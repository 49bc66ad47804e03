"""Grain input pipelines over TFRecord clip shards: the random-access source, the TSP clip
pipeline (pretraining) and the whole-video sliding-window pipeline (feature extraction)."""
from data_prep.pipelines.clip_transforms import TSP_MEAN, TSP_STD
from data_prep.pipelines.sliding_window import num_sliding_clips, sliding_window_batches
from data_prep.pipelines.source import ClipShardSource
from data_prep.pipelines.tsp_pipeline import SegmentClipTable, TspInputConfig, tsp_train_dataset

__all__ = [
    "TSP_MEAN",
    "TSP_STD",
    "ClipShardSource",
    "SegmentClipTable",
    "TspInputConfig",
    "num_sliding_clips",
    "sliding_window_batches",
    "tsp_train_dataset",
]
