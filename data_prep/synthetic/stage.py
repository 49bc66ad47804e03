"""Launch stage "synthetic_data": generates the synthetic data set into the workdir.

`python launch.py --config configs/data/synthetic.py:size=demo --workdir DIR`
"""
from __future__ import annotations

import logging
import os

from data_prep.synthetic.generator import DatasetOptions, generate_dataset
from data_prep.synthetic.scene_sampler import SceneOptions

log = logging.getLogger(__name__)


def options_from_config(config) -> DatasetOptions:
    """`DatasetOptions` from the stage config (see configs/data/synthetic.py)."""
    workers = int(config.workers)
    if workers <= 0:
        workers = os.cpu_count() or 1
    return DatasetOptions(
        num_train=int(config.num_train),
        num_val=int(config.num_val),
        seed=int(config.seed),
        scene=SceneOptions(
            min_duration_s=float(config.min_duration_s),
            max_duration_s=float(config.max_duration_s),
            fps=float(config.fps),
            height=int(config.height),
            width=int(config.width),
            max_events=int(config.max_events),
        ),
        workers=workers,
        crf=int(config.crf),
        preset=str(config.preset),
    )


def run(config, workdir: str) -> dict:
    """Writes videos/, captions/, tsp/ and synthetic_events.json under `workdir`."""
    options = options_from_config(config)
    log.info("generating %d train + %d val synthetic videos into %s",
             options.num_train, options.num_val, workdir)
    return generate_dataset(workdir, options,
                            skip_existing_videos=bool(config.get("skip_existing_videos", False)))
