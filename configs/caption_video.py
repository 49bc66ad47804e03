"""Stage "caption_video": caption your own video(s) with a trained encoder and captioner.

    python launch.py --config configs/caption_video.py --config.video=my.mp4 --workdir out/
    python launch.py --config configs/caption_video.py:run=demo_out \
        --config.video=folder_of_videos/ --workdir out/

Writes `out/captions.json` (ActivityNet submission format), `out/html/<video>.html` (the video
with its captions shown in sync with playback) and `out/html/<video>_timeline.png`.
The defaults use the models of `make demo` (switch run=DIR: the pipeline workdir, default
demo_out); point `encoder.*` and `captioner.*` at other runs to use them (frame rate, frame
size, crop and clip length come from the encoder's export).

Switches: run=DIR, references=captions.json (draw reference events too), size=demo|tiny (the
size the pipeline of `run` was made with: `configs/pipeline/synthetic.py:size=...`).
"""
from __future__ import annotations

import ml_collections

from configs.common import one_of, parse_arg, run_block


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    sw = parse_arg(arg, run="demo_out", references="", size="demo")
    run = sw.run
    c = ml_collections.ConfigDict()
    c.stage = "caption_video"
    c.run = run_block()
    c.video = ""  # a file, a folder of videos, or a comma-separated list
    c.references = [sw.references] if sw.references else []
    c.encoder = ml_collections.ConfigDict()
    c.encoder.config = "configs/sa_tsp/extract_synthetic.py"
    # The encoder's export (sa_tsp_train's params/) also records its input geometry (frame
    # rate, frame size, crop, clip length): the videos are decoded and cut to match it.
    c.encoder.init_from = f"{run}/sa_tsp/params"
    c.captioner = ml_collections.ConfigDict()
    c.captioner.init_from = f"{run}/captioner"  # trained with learned proposals (query mode)
    # The captioner config's feature source (by name) that reads the encoder's new features.
    c.captioner.feature_source = "sa_tsp"
    tiny = ",runlocal" if one_of("size", sw.size, ("demo", "tiny")) == "tiny" else ""
    c.captioner.config = (f"configs/captioner/synthetic.py:root={run}/data,predict,"
                          f"features={run}/features_sa_tsp/features,dim=64,devices=1{tiny}")
    return c
