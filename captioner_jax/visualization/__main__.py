"""Timelines and synced HTML pages for a few videos of a submission.

  python -m captioner_jax.visualization --submission PRED.json \
      --references ../shared/data/activitynet_captions/val_1.json [val_2.json] \
      [--videos-dir DIR] --out DIR [--num 5] [--video-ids v_a,v_b] [--metrics M.jsonl ...]
      [--no-transcode]

Writes DIR/<video>_timeline.png, DIR/<video>.html and DIR/index.html (for a video browsers
cannot play also DIR/<video>_frames.png and, unless --no-transcode, DIR/<video>_browser.mp4, an
H.264 copy the page plays; and DIR/curves.png
from the given metrics files: losses, learning rate and validation metrics, one block of
panels per file, i.e. per model; `curves.plot_training_curves` plots every metric).
"""
from __future__ import annotations

import argparse
import logging
import sys

from captioner_jax.visualization.curves import plot_overview
from captioner_jax.visualization.gallery import render_submission_videos
from data_prep.infra import paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m captioner_jax.visualization",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--submission", required=True, help="ActivityNet submission JSON")
    parser.add_argument("--references", nargs="*", default=[],
                        help="reference files (val_1.json val_2.json); each drawn as a block")
    parser.add_argument("--videos-dir", default=None,
                        help="folder with <video_id>.mp4 (or without the v_ prefix)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--num", type=int, default=5, help="number of videos")
    parser.add_argument("--video-ids", default=None, help="comma-separated ids to render")
    parser.add_argument("--thumbnails", type=int, default=8, help="frames in the top strip")
    parser.add_argument("--no-transcode", action="store_true",
                        help="no browser copy (H.264 mp4) of videos browsers cannot play "
                             "(AVI/MJPEG, HEVC, .mkv): their pages show a frame strip instead")
    parser.add_argument("--metrics", nargs="*", default=[],
                        help="JSON-lines metric files to plot into OUT/curves.png")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    ids = [v for v in args.video_ids.split(",") if v] if args.video_ids else None
    try:
        written = render_submission_videos(args.submission, args.out, args.references,
                                           args.videos_dir, args.num, ids, args.thumbnails,
                                           transcode=not args.no_transcode)
        if args.metrics:
            curves = paths.join(args.out, "curves.png")
            plot_overview(args.metrics, curves)  # losses, lr, val metrics per model
            print(f"training curves: {curves}")
    except (ValueError, FileNotFoundError) as err:
        logging.error("%s", err)
        return 2
    print(f"{len(written)} videos rendered into {args.out} (open {args.out}/index.html)")
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
