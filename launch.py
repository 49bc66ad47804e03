"""The one entry point: `python launch.py --config configs/<file>.py[:arg] --workdir DIR`.

The config names its stage (`config.stage`); this file only parses flags, sets up JAX
(compilation cache, optional multi-host init) and dispatches. Overrides work as
`--config.seed=3`; an unknown key is an error (ml_collections' locked ConfigDict).
"""
from __future__ import annotations

import importlib
import logging
import os
import sys

from absl import app, flags
from ml_collections import config_flags

# Stage name -> "module:function". Each function has the signature `run(config, workdir)`
# and returns an optional dict of results. Imports are lazy so a stage pulls in only
# what it needs (the evaluator never imports JAX models, data generation never imports Orbax).
STAGES: dict[str, str] = {
    "evaluate": "captioner_jax.evaluation.stage:run",
    "synthetic_data": "data_prep.synthetic.stage:run",
    "text_vocab": "data_prep.text.stage:run",
    "write_shards": "data_prep.shards.stage:run",
    "sa_tsp_train": "sa_tsp_jax.train:run",
    "sa_tsp_extract": "sa_tsp_jax.extract_features:run",
    "captioner_train": "captioner_jax.train:run",
    "captioner_predict": "captioner_jax.inference:run",
    "captioner_scst": "captioner_jax.scst.train_scst:run",
    "ensemble": "captioner_jax.ensemble.stage:run",
}

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Python config file, optionally with ':arg'.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for this stage's outputs.")


def resolve_stage(name: str):
    """Returns the `run(config, workdir)` callable registered for stage `name`."""
    if name not in STAGES:
        raise KeyError(f"unknown stage {name!r}; known stages: {sorted(STAGES)}")
    module_name, func_name = STAGES[name].split(":")
    return getattr(importlib.import_module(module_name), func_name)


def setup_jax(config) -> None:
    """Persistent compilation cache and (when asked) multi-host initialisation."""
    cache_dir = os.environ.get("JAX_COMPILATION_CACHE_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), ".jax_cache"
    )
    import jax  # imported here so `--help` and pure-host stages stay fast

    if cache_dir:
        jax.config.update("jax_compilation_cache_dir", cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    if config.get("distributed", False):
        jax.distributed.initialize()


def main(argv) -> None:
    del argv
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = _CONFIG.value
    workdir = _WORKDIR.value
    if config is None or workdir is None:
        raise app.UsageError("--config and --workdir are required")
    stage = config.get("stage")
    if not stage:
        raise app.UsageError(f"config {flags.FLAGS['config'].value!r} names no `stage`")
    run = resolve_stage(stage)
    setup_jax(config)
    os.makedirs(workdir, exist_ok=True)
    result = run(config, workdir)
    if result is not None:
        logging.info("stage %s finished: %s", stage, result)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    app.run(main)
