"""Finding video files: the one list of extensions and the one id rule of every stage.

The id rule. An ActivityNet id is `v_` + the YouTube id, always: the YouTube id may itself
start with `v_` (`v_v_28qqbBvu6` is YouTube's `v_28qqbBvu6`; TSP's CSVs name it
`video-name=v_28qqbBvu6`, `filename=v_v_28qqbBvu6.mp4`). So `youtube_id` removes exactly one
leading `v_` and `activitynet_id` always adds one; nothing tests "already prefixed?" (that
test turned `v_28qqbBvu6` into its own ActivityNet id and lost the video).

Files. Downloaded videos are named by either id, so `find_video_file` tries the id as given
and then its other form: `v_v_28qqbBvu6` finds `v_v_28qqbBvu6.mp4` or `v_28qqbBvu6.mp4` (never
`28qqbBvu6.mp4`); an id without the prefix, `28qqbBvu6`, finds `28qqbBvu6.mp4` or
`v_28qqbBvu6.mp4`.
"""
from __future__ import annotations

from data_prep.infra import paths

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")


ID_PREFIX = "v_"


def youtube_id(video_id: str) -> str:
    """ActivityNet id -> YouTube id: exactly one leading `v_` removed (`v_v_x` -> `v_x`).

    An id without the prefix is taken to be a YouTube id already and returned unchanged.
    """
    return video_id[len(ID_PREFIX):] if video_id.startswith(ID_PREFIX) else video_id


def activitynet_id(youtube: str) -> str:
    """YouTube id (e.g. TSP's `video-name`) -> ActivityNet id: `v_` added, always."""
    return ID_PREFIX + youtube


def candidate_names(video_id: str) -> list[str]:
    """File stems tried for `video_id`, in order: the id as given, then its other form (the
    YouTube id of a `v_` id, the ActivityNet id of an id without the prefix)."""
    other = youtube_id(video_id) if video_id.startswith(ID_PREFIX) else activitynet_id(video_id)
    return [video_id, other]


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
