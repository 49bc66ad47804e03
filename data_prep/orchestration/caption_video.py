"""Stage "caption_video": dense captions (+ timeline PNG and HTML page) for your videos.

    python launch.py --config configs/caption_video.py --config.video=my.mp4 --workdir out/

1. decodes the videos into one clip shard (`data_prep.shards.write_shards`) at the frame
   rate and size the encoder export `config.encoder.init_from` records (its input geometry);
2. extracts features with the trained encoder: stage `sa_tsp_extract` with the config
   `config.encoder.config`, the encoder `config.encoder.init_from` and those shards, into
   `out/encoder` (features `out/encoder/features/<id>.npy` and `features.h5`, as that stage
   documents);
3. captions them: stage `captioner_predict` with the predict config `config.captioner.config`
   whose feature source named `config.captioner.feature_source` is pointed at those features,
   the trained run `config.captioner.init_from`, and a split file listing the videos; the
   submission is the file that stage documents, `out/captioner/predictions/<split>.json`;
4. renders, per video, `out/html/<id>_timeline.png` and `out/html/<id>.html`, and
   `out/html/index.html` linking them (captioner_jax.visualization, through
   registry.HELPERS). A video browsers cannot play (AVI/MJPEG, HEVC, .mkv) also gets
   `out/html/<id>_frames.png` (a frame per event, with times) and `out/html/<id>_browser.mp4`
   (H.264, at most 480 px high, the original's timestamps), which its page plays;
   `--config.transcode=False` skips the copy (huge files): the page then shows the frame
   strip and a message with an ffmpeg command.

Outputs under the workdir (local or `gs://`): `captions.json` (official submission format),
`html/`, `report.json` (captioned and skipped videos: an unreadable file is skipped and
listed, the others go on; `warnings`: truncated videos and videos shorter than one clip,
skipped instead with `config.strict=True`), `fingerprint.json`. Multi-host: the stages run
collectively; process 0 alone writes the shard, the split file and the outputs.

Rerun into the same workdir: the outputs are reused only for the same inputs. The
fingerprint (`data_prep.infra.fingerprint`) records every video file's size and modification
time, the files (size, mtime) of the encoder export and of the captioner run's parameters
(`best/`, `checkpoints/`, `vocab.json`, `model_info.json`), the config files named and the
clip geometry. When any differs the stage stops and says what changed; `--config.force=True`
deletes the old outputs and captions again. (The extraction stage also checks a hash of the
encoder's variables itself.)
"""
from __future__ import annotations

import logging

import numpy as np

from data_prep.infra import distributed, paths
from data_prep.infra.atomic_files import atomic_write_json, read_json
from data_prep.infra.fingerprint import file_signatures, reconcile, tree_signatures
from data_prep.infra.videos import collect_videos
from data_prep.labels.types import VideoLabels
from data_prep.orchestration import registry
from data_prep.orchestration.config_files import apply_overrides, load_config_file
from data_prep.shards.writer import write_shards
from data_prep.video.container import video_duration_s

log = logging.getLogger(__name__)

# Where the extraction stage writes per-video features, by feature-file format
# (sa_tsp_jax/extract_features.py module docstring).
_EXTRACTED = {"npy": "features", "hdf5": "features.h5"}

# Bump when the outputs for the same inputs change meaning (fingerprint.json).
FORMAT_VERSION = 1
# What caption_video writes under its workdir (deleted by a forced rerun).
_OUTPUT_DIRS = ("shards", "encoder", "captioner", "html")
_OUTPUT_FILES = ("captions.json", "report.json", "videos.json")
# The parts of a captioner run that captioner_predict reads.
_CAPTIONER_PARAMS = ("best", "checkpoints", "vocab.json", "model_info.json")


def caption_fingerprint(config, video_paths: list[str], geometry) -> dict:
    """What caption_video's outputs depend on (module docstring)."""
    return {
        "format_version": FORMAT_VERSION,
        "videos": file_signatures(video_paths),
        "encoder": {"init_from": str(config.encoder.init_from), "config": config.encoder.config,
                    "files": tree_signatures(config.encoder.init_from)},
        "captioner": {"init_from": str(config.captioner.init_from),
                      "config": config.captioner.config,
                      "feature_source": config.captioner.feature_source,
                      "files": tree_signatures(config.captioner.init_from, _CAPTIONER_PARAMS)},
        "geometry": {"fps": float(geometry.fps), "resize": [int(v) for v in geometry.resize],
                     "clip_length": int(geometry.clip_length)},
        "strict": bool(config.get("strict", False)),
    }


def _reconcile_outputs(config, root: str, video_paths: list[str], geometry) -> None:
    """Reuse only outputs of the same inputs; otherwise stop, or delete them under force."""
    has_outputs = any(paths.exists(paths.join(root, n)) for n in _OUTPUT_DIRS + _OUTPUT_FILES)

    def remove_outputs():
        for name in _OUTPUT_DIRS:
            if paths.exists(paths.join(root, name)):
                paths.remove_tree(paths.join(root, name))
        for name in _OUTPUT_FILES:
            paths.remove(paths.join(root, name))

    reconcile(root, caption_fingerprint(config, video_paths, geometry),
              force=bool(config.get("force", False)), has_outputs=has_outputs,
              remove_outputs=remove_outputs, what="captions (shards, features, predictions)")


def unlabelled(video_id: str, duration: float) -> VideoLabels:
    """Labels of a video nobody annotated: no segments, no events."""
    empty = np.zeros((0, 2), np.float32)
    return VideoLabels(video_id=video_id, duration=duration, segments=empty,
                       action_labels=[], region_labels=[], event_segments=empty,
                       event_concepts=[])


def point_features_at(features: list[dict], source_name: str, encoder_dir: str,
                      where: str) -> list[dict]:
    """`features` (a captioner config's `data.features`) with the source named
    `source_name` reading the features extracted into `encoder_dir`."""
    features = [dict(f) for f in features]
    names = [f.get("name") for f in features]
    if names.count(source_name) != 1:
        raise ValueError(f"{where}: no single feature source named {source_name!r} (sources: "
                         f"{names}); set captioner.feature_source to the one the encoder's "
                         "features replace")
    source = features[names.index(source_name)]
    fmt = source.get("format", "npy")
    if fmt not in _EXTRACTED:
        raise ValueError(f"{where}: feature source {source_name!r} has format {fmt!r}; the "
                         f"encoder's features come as {sorted(_EXTRACTED)}")
    source["path"] = paths.join(encoder_dir, _EXTRACTED[fmt])
    return features


def caption_video(config, workdir: str) -> dict:
    """Stage entry point (see the module docstring). Returns {"captioned", "skipped"}."""
    root = paths.absolute(workdir)
    main = distributed.is_main_process()
    skipped, items = [], []
    video_paths = collect_videos(config.video)
    for path in video_paths:
        video_id = paths.as_path(path).stem
        try:
            duration = video_duration_s(path)
        except ValueError as err:
            skipped.append({"video": path, "error": str(err)})
            log.warning("skipping %s: %s", path, err)
            continue
        items.append((path, unlabelled(video_id, duration)))

    # 1. Frames into a shard, at the encoder's frame rate and size (its export records them).
    extract_cfg = load_config_file(config.encoder.config)
    geometry = registry.resolve_helper("encoder_geometry")(extract_cfg, config.encoder.init_from)
    if not geometry.fps:
        raise ValueError(f"the encoder export {config.encoder.init_from} records no frame "
                         "rate: export it with its input geometry (sa_tsp_jax/import_torch.py)")
    _reconcile_outputs(config, root, [str(p) for p in video_paths], geometry)
    shard_dir = paths.join(root, "shards")
    shard_report = write_shards(
        items, shard_dir, num_shards=1, fps=float(geometry.fps), resize=tuple(geometry.resize),
        min_frames=int(geometry.clip_length), strict=bool(config.get("strict", False)),
    ) if main else None
    shard_report = distributed.allgather_objects(shard_report)[0]
    skipped += [{"video": s["video_path"], "error": s["error"]}
                for s in shard_report["skipped"]]
    warnings = [{"video": w["video_path"], "warning": w["warning"]}
                for w in shard_report["warnings"]]
    bad = {s["video_id"] for s in shard_report["skipped"]}
    items = [(p, lab) for p, lab in items if lab.video_id not in bad]
    if not items:
        raise RuntimeError(f"no readable video among {config.video!r}: {skipped}")

    # 2. Features with the trained encoder.
    apply_overrides(extract_cfg, {"init_from": config.encoder.init_from,
                                  "shards": paths.join(shard_dir, "*.tfrecord")})
    encoder_dir = paths.join(root, "encoder")
    registry.resolve_stage(extract_cfg.stage)(extract_cfg, encoder_dir)

    # 3. Captions with learned proposals (no references: nothing to score unless given).
    split_path = paths.join(root, "videos.json")
    if main:
        atomic_write_json(split_path, {
            lab.video_id: {"duration": lab.duration, "timestamps": [], "sentences": []}
            for _, lab in items})
    distributed.sync("caption_video split file")
    cap_cfg = load_config_file(config.captioner.config)
    if cap_cfg.stage != "captioner_predict":
        raise ValueError(f"captioner.config {config.captioner.config!r} is a {cap_cfg.stage!r} "
                         "config; caption_video needs a captioner_predict one (switch predict)")
    features = point_features_at(list(cap_cfg.data.features), config.captioner.feature_source,
                                 encoder_dir, config.captioner.config)
    apply_overrides(cap_cfg, {
        "data.features": features, "predict.captions": split_path,
        "init_from": config.captioner.init_from, "eval.references": list(config.references)})
    predict_dir = paths.join(root, "captioner")
    registry.resolve_stage(cap_cfg.stage)(cap_cfg, predict_dir)
    if not main:
        return {"captioned": len(items), "skipped": len(skipped)}
    # captioner_predict writes DIR/predictions/<split file stem>.json (its docstring).
    submission = read_json(paths.join(predict_dir, "predictions",
                                      paths.as_path(split_path).stem + ".json"))
    atomic_write_json(paths.join(root, "captions.json"), submission)

    # 4. What a person looks at: a timeline image and a page that plays the video.
    references = {}
    for ref_path in config.references:
        references.update(read_json(ref_path))
    render_video_result = registry.resolve_helper("render_video_result")
    pages = []
    for path, lab in items:
        ref = references.get(lab.video_id)
        ref_events = None if ref is None else [
            {"timestamp": t, "sentence": s} for t, s in zip(ref["timestamps"], ref["sentences"])]
        pages.append(render_video_result(
            paths.join(root, "html"), lab.video_id,
            submission["results"].get(lab.video_id, []), duration_s=lab.duration,
            references=ref_events, video_path=path,
            transcode=bool(config.get("transcode", True))))
    index = registry.resolve_helper("write_video_index")(
        paths.join(root, "html"), pages, paths.join(root, "captions.json"))
    report = {"captioned": [lab.video_id for _, lab in items], "skipped": skipped,
              "warnings": warnings, "pages": pages, "index": index}
    atomic_write_json(paths.join(root, "report.json"), report)
    for page in pages:
        log.info("%s: %d events -> %s", page["video_id"], page["num_predicted"], page["html"])
    return {"captioned": len(items), "skipped": len(skipped)}
