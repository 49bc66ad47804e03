"""Timeline images and synced HTML pages for a few videos of a submission.

`render_video_result` does one video (also what "caption your own video" calls after
inference); `render_submission_videos` picks videos from a submission file, finds their
references and video files, renders each and writes an `index.html` linking them.

A video browsers cannot play (`playable.browser_playable`: AVI/MJPEG, HEVC, .mkv, ...) also
gets `<id>_frames.png` (a frame per event, at its midpoint, with times) and, unless
`transcode=False` (huge files), `<id>_browser.mp4`: an H.264 copy at most 480 px high with
the original's timestamps, which the page plays instead.
"""
from __future__ import annotations

import html
import logging
import math
import os
import pathlib
import re
from collections.abc import Mapping, Sequence

from captioner_jax.visualization.events import parse_events, span_of
from captioner_jax.visualization.html_page import write_caption_page
from captioner_jax.visualization.playable import (
    browser_playable,
    strip_times,
    transcode_for_browser,
    write_frame_strip,
)
from captioner_jax.visualization.timeline import render_timeline
from captioner_jax.visualization.video_frames import try_thumbnails
from data_prep.infra import paths
from data_prep.infra.atomic_files import atomic_write_text, read_json
from data_prep.infra.videos import find_video_file
from data_prep.video.container import video_duration_s


def safe_name(video_id: str) -> str:
    """A file-name-safe form of a video id (ids are user data: no "/" or ".." in paths)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", video_id).strip(".")
    return name or "video"


def load_submission(path: str) -> dict[str, list]:
    """`results` of an ActivityNet submission file: `{video_id: [{"timestamp", "sentence"}]}`.

    Raises ValueError naming the file if it is not JSON or has no `results` object.
    """
    data = read_json(path)
    results = data.get("results") if isinstance(data, Mapping) else None
    if not isinstance(results, Mapping):
        raise ValueError(f"{path}: expected a submission with a 'results' object "
                         "{video_id: [{'timestamp': [s, e], 'sentence': str}, ...]}")
    return dict(results)


def load_references(reference_paths: Sequence[str]) -> dict[str, dict]:
    """`{file label: {video_id: {"duration", "timestamps", "sentences"}}}`, label = file stem."""
    out: dict[str, dict] = {}
    for path in reference_paths:
        data = read_json(path)
        if not isinstance(data, Mapping):
            raise ValueError(f"{path}: expected {{video_id: {{timestamps, sentences}}}}")
        label = paths.as_path(path).stem
        while label in out:
            label += "'"
        out[label] = dict(data)
    return out


def render_video_result(out_dir: str, video_id: str, predicted: list[dict],
                        duration_s: float | None = None,
                        references: list | Mapping[str, list] | None = None,
                        video_path: str | None = None, num_thumbnails: int = 8,
                        transcode: bool = True, max_height: int = 480) -> dict:
    """Writes `<id>_timeline.png` and `<id>.html` for one video into `out_dir` (and, for a
    video browsers cannot play, `<id>_frames.png` and `<id>_browser.mp4`: module docstring).

    Args:
      predicted: submission-format events of this video.
      duration_s: video length; None -> read from `video_path`, else the latest event end.
      references: None, a list of submission-format events, or `{set name: list}`.
      video_path: the video file; the page refers to it by a path relative to `out_dir`, and
        thumbnails are taken from it. None -> no player, no thumbnails.
      num_thumbnails: frames in the timeline's top strip (0: none).
      transcode: make the browser copy of an unplayable video (False: the page shows the
        frame strip and a message with an ffmpeg command instead).
      max_height: the copy's height limit in pixels.
    Returns:
      `{"video_id", "timeline_png", "html", "num_predicted", "duration_s", "playable",
      "video_kind", "browser_copy", "frame_strip"}` (the last two: paths or None).
    """
    paths.make_dirs(out_dir)
    if (duration_s is None or not duration_s > 0) and video_path:
        try:
            duration_s = video_duration_s(video_path)
        except ValueError as err:
            logging.warning("%s: %s", video_id, err)
    if duration_s is None or not math.isfinite(duration_s) or duration_s <= 0:
        duration_s = span_of(parse_events(predicted, f"{video_id}: predicted")) or None
    frames, times = try_thumbnails(video_path, duration_s or 0.0, num_thumbnails)
    stem = safe_name(video_id)
    png = paths.join(out_dir, f"{stem}_timeline.png")
    render_timeline(video_id, duration_s, predicted, references, png, frames=frames,
                    frame_times=times)
    page = paths.join(out_dir, f"{stem}.html")
    video_src = page_video_src(video_path, out_dir) if video_path else None
    fallback = None
    if video_path and paths.is_local(video_path) and video_src != os.fspath(video_path):
        # Relative first (the folder moves with its videos), absolute second (the output
        # folder moved on its own).
        fallback = pathlib.Path(paths.absolute(video_path)).resolve().as_uri()
    playable, kind, copy, strip = True, None, None, None
    if video_path:
        try:
            playable, kind = browser_playable(video_path)
        except ValueError as err:
            logging.warning("%s: %s", video_id, err)
    if not playable:
        events = parse_events(predicted, f"{video_id}: predicted")
        times = strip_times([(e.start, e.end) for e in events], duration_s or 0.0)
        strip = paths.join(out_dir, f"{stem}_frames.png")
        try:
            write_frame_strip(video_path, times, strip)
        except ValueError as err:
            logging.warning("%s: no frame strip: %s", video_id, err)
            strip = None
        if transcode:
            copy = paths.join(out_dir, f"{stem}_browser.mp4")
            try:
                info = transcode_for_browser(video_path, copy, max_height=max_height)
                logging.info("%s: %s is not browser-playable: copy %s (%dx%d, %d frames)",
                             video_id, kind, copy, info["width"], info["height"],
                             info["frames"])
            except ValueError as err:
                logging.warning("%s: no browser copy: %s", video_id, err)
                copy = None
    write_caption_page(page, video_src, video_id, duration_s, predicted, references,
                       timeline_png=png, video_fallback=fallback, original_playable=playable,
                       playable_copy=paths.as_path(copy).name if copy else None,
                       frame_strip_png=strip, video_kind=kind)
    return {"video_id": video_id, "timeline_png": png, "html": page,
            "num_predicted": len(predicted), "duration_s": duration_s, "playable": playable,
            "video_kind": kind, "browser_copy": copy, "frame_strip": strip}


def page_video_src(video_path: str, out_dir: str) -> str:
    """How a page in `out_dir` refers to `video_path`: a relative path when both are local
    (the folder can be moved with its videos), else the video's path or URI as given."""
    if paths.is_local(video_path) and paths.is_local(out_dir):
        return os.path.relpath(paths.absolute(video_path), paths.absolute(out_dir))
    return os.fspath(video_path)


def _choose_videos(results: Mapping, references: Mapping[str, dict], num: int,
                   video_ids: Sequence[str] | None) -> list[str]:
    if video_ids:
        missing = [v for v in video_ids if v not in results]
        if missing:
            raise ValueError(f"videos not in the submission: {', '.join(missing)}")
        return list(video_ids)
    ids = list(results)
    if references:
        annotated = [v for v in ids if any(v in r for r in references.values())]
        if annotated:
            ids = annotated
        else:
            logging.warning("no submission video is in the references; drawing predictions only")
    return ids[:num]


def render_submission_videos(submission_path: str, out_dir: str,
                             reference_paths: Sequence[str] = (),
                             videos_dir: str | None = None, num: int = 5,
                             video_ids: Sequence[str] | None = None,
                             num_thumbnails: int = 8, transcode: bool = True) -> list[dict]:
    """Renders `num` videos of a submission (file order; those with references first) and an
    `index.html`. A video that fails to render is reported and skipped. `transcode`: as in
    `render_video_result`.

    Returns the `render_video_result` dicts of the videos written.
    """
    results = load_submission(submission_path)
    references = load_references(reference_paths)
    chosen = _choose_videos(results, references, num, video_ids)
    written = []
    for video_id in chosen:
        refs = {name: [{"timestamp": t, "sentence": s}
                       for t, s in zip(r[video_id].get("timestamps") or [],
                                       r[video_id].get("sentences") or [])]
                for name, r in references.items()
                if isinstance(r.get(video_id), Mapping)}
        durations = [float(r[video_id]["duration"]) for r in references.values()
                     if isinstance(r.get(video_id), Mapping) and "duration" in r[video_id]]
        video_path = find_video_file(videos_dir, video_id) if videos_dir else None
        try:
            info = render_video_result(out_dir, video_id, list(results[video_id] or []),
                                       durations[0] if durations else None,
                                       refs or None, video_path, num_thumbnails,
                                       transcode=transcode)
        except (ValueError, TypeError, OSError) as err:
            logging.error("%s: %s: not rendered: %s", submission_path, video_id, err)
            continue
        written.append(info)
        logging.info("%s: %s, %s", video_id, info["timeline_png"], info["html"])
    _write_index(paths.join(out_dir, "index.html"), submission_path, written)
    return written


def write_index(out_dir: str, pages: list[dict], submission_path: str) -> str:
    """`out_dir/index.html` linking the pages `render_video_result` returned (video id, number
    of events); returns its path."""
    path = paths.join(out_dir, "index.html")
    _write_index(path, submission_path, pages)
    return path


def _write_index(path: str, submission_path: str, written: list[dict]) -> None:
    rows = "\n".join(
        f'<li><a href="{html.escape(paths.as_path(w["html"]).name, quote=True)}">'
        f'{html.escape(w["video_id"])}</a> — {w["num_predicted"]} events</li>'
        for w in written)
    atomic_write_text(path, f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>Dense captions</title>
<style>body{{font-family:system-ui,sans-serif;max-width:800px;margin:2em auto}}</style>
</head><body><h1>Dense captions</h1>
<p>Submission: {html.escape(paths.as_path(submission_path).name)}</p>
<ol>
{rows}
</ol></body></html>
""")
