"""Finding video files: the one list of extensions and the one id -> file rule.

ActivityNet ids carry a `v_` prefix that downloaded files often lack (YouTube id only), so
`find_video_file` tries the id as given and then without one leading `v_`. An id such as
`v_v_28qqbBvu6` (YouTube id `v_28qqbBvu6`) therefore finds `v_v_28qqbBvu6.mp4` or
`v_28qqbBvu6.mp4`, never `28qqbBvu6.mp4`.
"""
from __future__ import annotations

from data_prep.infra import paths

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")


def candidate_names(video_id: str) -> list[str]:
    """File stems tried for `video_id`, in order."""
    names = [video_id]
    if video_id.startswith("v_"):
        names.append(video_id[2:])
    return names


def find_video_file(videos_dir: str, video_id: str) -> str | None:
    """Path of `video_id`'s file in `videos_dir` (any extension of VIDEO_EXTENSIONS), or None."""
    if not paths.is_dir(videos_dir):
        return None
    present = set(paths.list_dir(videos_dir))
    for name in candidate_names(video_id):
        for ext in VIDEO_EXTENSIONS:
            if name + ext in present:
                return paths.join(videos_dir, name + ext)
    return None


def is_video_file(name: str) -> bool:
    return name.lower().endswith(VIDEO_EXTENSIONS)


def collect_videos(spec: str) -> list[str]:
    """A video file, a folder of videos, or a comma-separated list of either -> file paths."""
    found = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        if paths.is_dir(part):
            found += [paths.join(part, name) for name in paths.list_dir(part)
                      if is_video_file(name)]
        elif paths.is_file(part):
            found.append(part)
        else:
            raise FileNotFoundError(f"video {part!r} not found")
    if not found:
        raise FileNotFoundError(f"no video files ({', '.join(VIDEO_EXTENSIONS)}) in {spec!r}")
    return found
