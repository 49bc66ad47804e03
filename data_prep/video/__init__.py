"""Video decoding (PyAV; local or remote files) and per-frame JPEG coding."""
from data_prep.video.container import open_container, video_duration_s
from data_prep.video.decode import (
    DecodedVideo,
    StreamEnd,
    VideoDecodeError,
    decode_video,
    iter_resampled_frames,
    output_size,
    truncation_problem,
)
from data_prep.video.jpeg import decode_jpeg, encode_jpeg

__all__ = [
    "DecodedVideo",
    "StreamEnd",
    "VideoDecodeError",
    "decode_jpeg",
    "decode_video",
    "encode_jpeg",
    "iter_resampled_frames",
    "open_container",
    "output_size",
    "truncation_problem",
    "video_duration_s",
]
