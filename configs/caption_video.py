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

Released TSP + PDVC weights (README "Caption real videos with the released weights"):

    python launch.py --config configs/caption_video.py:encoder=tsp_jax,captioner=pdvc_jax \
        --config.video=my.mp4 --workdir out/

  encoder=DIR     an encoder export (`python -m sa_tsp_jax.import_torch` of TSP's checkpoint,
                  or `sa_tsp_train`'s params/); its recorded geometry gives the protocol of
                  TSP's released features: 16-frame clips at 15 fps, frames 128x171, centre
                  crop 112, TSP normalisation; clips start every 16 frames
                  (configs/sa_tsp/extract_activitynet.py), one 512-d feature per clip.
  captioner=DIR   a captioner run (`python -m captioner_jax.import_pdvc` of PDVC's
                  model-best.pth, or a captioner_train workdir) trained with learned
                  proposals; PDVC's ActivityNet inference settings
                  (configs/captioner/activitynet.py:predict: 100 feature steps, reranking).
  batch=N         clips per extraction step (default 16; larger on an accelerator).
"""
from __future__ import annotations

import json
import os

import ml_collections

from configs.common import one_of, parse_arg, run_block

# Repository root: sibling config files are named relative to it (config_files.REPO_ROOT).
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    sw = parse_arg(arg, run="demo_out", references="", size="demo", encoder="", captioner="",
                   batch=16)
    run = sw.run
    c = ml_collections.ConfigDict()
    c.stage = "caption_video"
    c.run = run_block()
    c.video = ""  # a file, a folder of videos, or a comma-separated list
    # True: redo everything in the workdir when its videos / models changed (default: stop and
    # say what changed). strict: skip truncated videos and videos shorter than one clip.
    c.force = False
    c.strict = False
    # A video browsers cannot play (AVI/MJPEG, HEVC, .mkv) gets an H.264 copy for its page;
    # False (huge files): its page shows a frame strip and an ffmpeg command instead.
    c.transcode = True
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
    if sw.encoder or sw.captioner:
        return _released(c, sw)
    tiny = ",runlocal" if one_of("size", sw.size, ("demo", "tiny")) == "tiny" else ""
    c.captioner.config = (f"configs/captioner/synthetic.py:root={run}/data,predict,"
                          f"features={run}/features_sa_tsp/features,dim=64,devices=1{tiny}")
    return c


def _released(c: ml_collections.ConfigDict, sw) -> ml_collections.ConfigDict:
    """encoder=DIR, captioner=DIR: TSP extraction + PDVC's ActivityNet inference settings."""
    if not (sw.encoder and sw.captioner):
        raise ValueError("caption_video: give both encoder=DIR (imported TSP weights) and "
                         "captioner=DIR (imported PDVC run), or neither (run=DIR)")
    if "," in sw.encoder + sw.captioner:
        raise ValueError("caption_video: encoder/captioner paths may not contain ','")
    _check_learned_proposals(sw.captioner)
    c.encoder.init_from = sw.encoder
    c.encoder.config = os.path.join(
        _ROOT, "configs", "sa_tsp", "extract_activitynet.py") + (
        f":params={sw.encoder},batch={int(sw.batch)}")
    c.captioner.init_from = sw.captioner
    c.captioner.feature_source = "sa_tsp"  # activitynet.py's .npy source, pointed at out/encoder
    c.captioner.config = os.path.join(_ROOT, "configs", "captioner", "activitynet.py") + (
        f":predict,devices=1,vocab={sw.captioner.rstrip('/')}/vocab.json")
    return c


def _check_learned_proposals(captioner: str) -> None:
    """A GT-proposal run needs given segments: it cannot find events in a new video."""
    info = os.path.join(captioner, "model_info.json")
    if "://" in captioner or not os.path.isfile(info):
        return  # remote or not there yet: captioner_predict names what is wrong
    with open(info) as f:
        mode = json.load(f).get("mode")
    if mode != "queries":
        raise ValueError(f"caption_video: the captioner in {captioner} was trained in mode "
                         f"{mode!r}; captioning new videos needs learned proposals (PDVC's "
                         "anet_tsp_pdvc, not the _gt variant)")
