"""The one entry point: `python launch.py --config configs/<file>.py[:arg] --workdir DIR`.

The config names its stage (`config.stage`); this file only parses flags, sets up JAX
(compilation cache, optional multi-host init) and dispatches to the stage registered under
that name (`data_prep/orchestration/registry.py`, where the pipeline runner and the
caption_video stage live too). Overrides work as `--config.seed=3`; an unknown key is an
error (ml_collections' locked ConfigDict).
"""
from __future__ import annotations

import logging
import os
import pathlib
import sys

from absl import app, flags
from ml_collections import config_flags

from data_prep.orchestration import registry
from data_prep.orchestration.config_files import write_resolved_config
from data_prep.orchestration.registry import resolve_stage

# Config files live in the source checkout (`configs/` is not packaged: see the README,
# "Install as a package"); relative --config paths are relative to the working directory.
_ROOT = pathlib.Path(__file__).resolve().parent

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Python config file, optionally with ':arg'.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for this stage's outputs.")


class _QuietLibraries(logging.Filter):
    """Drops INFO records of chatty libraries (Orbax logs every checkpoint phase)."""

    NOISY = (f"{os.sep}orbax{os.sep}", f"{os.sep}etils{os.sep}")

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not any(
            part in record.pathname for part in self.NOISY)


def main(argv) -> None:
    del argv
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_QuietLibraries())
    config = _CONFIG.value
    workdir = _WORKDIR.value
    if config is None or workdir is None:
        raise app.UsageError("--config and --workdir are required")
    stage = config.get("stage")
    if not stage:
        raise app.UsageError(f"config {flags.FLAGS['config'].value!r} names no `stage`")
    run = resolve_stage(stage)
    from data_prep.infra.jax_setup import setup_jax

    setup_jax(config)
    write_resolved_config(config, workdir)
    result = run(config, workdir)
    if result is not None:
        logging.info("stage %s finished: %s", stage, result)


def launchable_configs(root: pathlib.Path = _ROOT) -> list[str]:
    """`configs/**.py` files that define `get_config` (what --config can name)."""
    found = []
    for path in sorted((root / "configs").rglob("*.py")):
        if path.name not in ("__init__.py", "base.py") and "\ndef get_config(" in path.read_text():
            found.append(str(path.relative_to(root)))
    return found


def usage() -> str:
    """--help text: this docstring, the registered stages and the launchable configs."""
    configs = launchable_configs()
    listing = "\n".join(f"  {c}" for c in configs) if configs else (
        f"  (none found under {_ROOT / 'configs'}: run from a source checkout)")
    return (f"{__doc__}\nStages (config.stage): {', '.join(sorted(registry.STAGES))}\n\n"
            f"Launchable configs (--config FILE[:switches]; each file's docstring lists its "
            f"switches):\n{listing}\n")


def cli() -> None:
    """Console script `sa-tsp-launch` (pyproject.toml): `python launch.py` as a command."""
    if str(_ROOT) not in sys.path and (_ROOT / "configs").is_dir():
        sys.path.insert(0, str(_ROOT))  # config files import `configs.common`
    sys.modules["__main__"].__doc__ = usage()
    app.run(main)


if __name__ == "__main__":
    cli()
