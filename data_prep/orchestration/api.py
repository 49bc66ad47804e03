"""Python API: dense captions of your videos without writing configs.

    from data_prep.orchestration.api import DenseCaptioner

    captioner = DenseCaptioner.load("tsp_jax", "pdvc_jax")   # imported TSP / PDVC weights
    for event in captioner("video.mp4"):                     # [Event(start, end, sentence)]
        print(f"{event.start:6.1f}-{event.end:6.1f} s  {event.sentence}")
    per_video = captioner(["a.mp4", "b.mp4"])                # one list of events per video

`load(encoder_dir, captioner_dir)` takes an encoder export (`python -m sa_tsp_jax.import_torch`
or `sa_tsp_train`'s params/) and a captioner run (`python -m captioner_jax.import_pdvc` or a
`captioner_train` workdir). A call runs the stage `caption_video` (configs/caption_video.py:
encoder=...,captioner=...: TSP's extraction protocol, then PDVC's inference) through the stage
registry in a temporary folder, or in `workdir` when given (which then keeps captions.json
and the HTML pages of the last call made into it; a call with the same videos reuses them).
Within one process the compiled captioner is reused across calls (the predict function is
cached by model) and the encoder's compilation comes from JAX's compilation cache when
`setup_jax` / JAX_COMPILATION_CACHE_DIR enables it.

Video ids are the file names without extension, so the videos of one call need distinct
names. An unreadable video is a ValueError naming it (`skip_unreadable=True`: its events are
`None` instead). Times are seconds from the video's start.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Sequence

from data_prep.infra import paths
from data_prep.infra.atomic_files import read_json
from data_prep.infra.host_memory import keep_freed_memory
from data_prep.orchestration import registry
from data_prep.orchestration.config_files import apply_overrides, load_config_file

_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "configs", "caption_video.py")


@dataclasses.dataclass(frozen=True)
class Event:
    """One captioned event: [start, end] in seconds, its sentence and the ranking score."""

    start: float
    end: float
    sentence: str
    score: float | None = None


class DenseCaptioner:
    """An encoder + captioner pair (see the module docstring)."""

    def __init__(self, config):
        self.config = config

    @classmethod
    def load(cls, encoder_dir: str, captioner_dir: str, *, batch: int = 16) -> DenseCaptioner:
        """`batch`: clips per feature-extraction step. Fails now if a folder is not what it
        should be (no encoder export / no captioner run)."""
        enc, cap = str(encoder_dir), str(captioner_dir)
        if not paths.exists(paths.join(enc, "backbone_config.json")):
            raise FileNotFoundError(f"{enc} is not an encoder export (no backbone_config.json): "
                                    "python -m sa_tsp_jax.import_torch TSP.pth DIR makes one")
        if not paths.exists(paths.join(cap, "model_info.json")):
            raise FileNotFoundError(f"{cap} is not a captioner run (no model_info.json): "
                                    "python -m captioner_jax.import_pdvc PDVC.pth DIR makes one")
        config = load_config_file(f"{_CONFIG}:encoder={enc},captioner={cap},batch={int(batch)}")
        keep_freed_memory()  # effective when this is the process's first JAX use
        return cls(config)

    def __call__(self, videos: str | Sequence[str], *, workdir: str | None = None,
                 skip_unreadable: bool = False):
        """One path -> list[Event]; a list of paths -> list of list[Event] (same order)."""
        single = isinstance(videos, (str, os.PathLike))
        items = [str(videos)] if single else [str(v) for v in videos]
        if not items:
            return []
        stems = [paths.as_path(v).stem for v in items]
        dupes = sorted({s for s in stems if stems.count(s) > 1})
        if dupes:
            raise ValueError(f"videos of one call need distinct file names; repeated: {dupes}")
        bad = [v for v in items if "," in v]
        if bad:
            raise ValueError(f"video paths may not contain ',': {bad}")
        if workdir is not None:
            results = self._run(items, str(workdir))
        else:
            with tempfile.TemporaryDirectory(prefix="dense_captioner_") as tmp:
                results = self._run(items, tmp)
        submission, skipped = results
        out = []
        for path, stem in zip(items, stems):
            if stem in skipped:
                if not skip_unreadable:
                    raise ValueError(f"{path}: {skipped[stem]}")
                out.append(None)
                continue
            out.append(sorted((_event(e) for e in submission.get(stem, [])),
                              key=lambda e: (e.start, e.end)))
        return out[0] if single else out

    def _run(self, items: list[str], workdir: str):
        config = self.config.copy_and_resolve_references()
        config.unlock()
        overrides = {"video": ",".join(items)}
        if "force" in config:
            # A workdir holds the outputs of the last call: other videos replace them (the
            # same videos again reuse them).
            overrides["force"] = True
        apply_overrides(config, overrides)
        config.lock()
        registry.resolve_stage(config.stage)(config, workdir)
        submission = read_json(paths.join(workdir, "captions.json"))["results"]
        report = read_json(paths.join(workdir, "report.json"))
        skipped = {paths.as_path(s["video"]).stem: s["error"] for s in report["skipped"]}
        return submission, skipped


def _event(entry: dict) -> Event:
    start, end = entry["timestamp"]
    score = entry.get("joint_score", entry.get("proposal_score"))
    return Event(float(start), float(end), str(entry["sentence"]),
                 None if score is None else float(score))
