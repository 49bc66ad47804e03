"""The one entry point: `python launch.py --config configs/<file>.py[:arg] --workdir DIR`.

The config names its stage (`config.stage`); this file only parses flags, sets up JAX
(compilation cache, optional multi-host init) and dispatches to the stage registered under
that name (`data_prep/orchestration/registry.py`, where the pipeline runner and the
caption_video stage live too). Overrides work as `--config.seed=3`; an unknown key is an
error naming the keys that exist at that level.

Every stage runs holding its workdir's lock (`data_prep/infra/workdir_lock.py`: a second run
into the same workdir stops; a lock left by a killed run is taken over), after temporary
files of an interrupted run are removed from the workdir, and a resumed training run whose
config differs from its checkpoint's stops naming the keys. Expected errors (missing files,
permissions, a full disk, bad config values or annotations) print one or two lines and exit
with status 1; `--verbosity=1` or DVC_TRACEBACK=1 adds the traceback
(`data_prep/orchestration/errors.py`).
"""
from __future__ import annotations

import logging
import os
import pathlib
import sys

from absl import app, flags
from ml_collections import config_flags

from data_prep.orchestration import registry
from data_prep.orchestration.config_files import (
    clean_workdir_temporaries,
    missing_key_message,
    write_resolved_config,
)
from data_prep.orchestration.errors import report_expected_errors
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
    from data_prep.infra.host_memory import keep_freed_memory

    keep_freed_memory()  # before anything can start XLA's threads (see its docstring)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_QuietLibraries())
    config = _CONFIG.value
    workdir = _WORKDIR.value
    if config is None or workdir is None:
        raise app.UsageError("--config and --workdir are required")
    try:
        stage = config.get("stage")
    except OSError as err:  # ml_collections defers a config file that failed to load
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        print(f"error: cannot load the config file ({' '.join(lines[-2:])})\n  -> check the "
              "--config path (relative to the working directory)", file=sys.stderr)
        raise SystemExit(2) from None
    if not stage:
        raise app.UsageError(f"config {flags.FLAGS['config'].value!r} names no `stage`")
    with report_expected_errors():
        result = run_stage(config, workdir)
    if result is not None:
        logging.info("stage %s finished: %s", stage, result)


def run_stage(config, workdir: str):
    """Sets up JAX, takes the workdir lock, cleans temporaries of an interrupted run, checks
    a resume's config, records the config and runs the stage (module docstring)."""
    from data_prep.infra import distributed
    from data_prep.infra.jax_setup import setup_jax
    from data_prep.infra.workdir_lock import WorkdirLock, check_resume_config

    run = resolve_stage(config.stage)
    setup_jax(config)
    with WorkdirLock(workdir):
        if distributed.is_main_process():
            for stale in clean_workdir_temporaries(workdir):
                logging.info("removed the temporary file %s of an interrupted run", stale)
        check_resume_config(workdir, config, config.stage)
        write_resolved_config(config, workdir)
        return run(config, workdir)


def _config_for_message(argv: list[str]):
    """The config `--config` names, loaded without the overrides (None if it cannot be)."""
    from data_prep.infra import paths
    from data_prep.orchestration.config_files import load_config_file

    spec = None
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            spec = argv[i + 1]
        elif arg.startswith("--config="):
            spec = arg[len("--config="):]
    if not spec:
        return None
    path, sep, switches = spec.partition(":")
    try:
        return load_config_file(paths.absolute(path) + sep + switches)
    except Exception:  # noqa: BLE001 - the config file itself is broken: absl's message
        return None


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with a readable message (and exit 2) for `--config.a.b=...`
    naming a key the config lacks (which keys exist at that level) or a bad value."""
    try:
        return flags.FLAGS(argv)
    except (flags.Error, AttributeError, KeyError, ValueError, TypeError) as err:
        message = str(err)
        if "Traceback (most recent call last)" in message:  # a config file's get_config failed
            lines = [line.strip() for line in message.splitlines() if line.strip()]
            message = f"{lines[0]} {lines[-1]}"
        config = _config_for_message(argv)
        for arg in argv[1:]:
            if config is None or not arg.startswith("--config."):
                continue
            dotted = arg[len("--config."):].partition("=")[0]
            problem = missing_key_message(config, dotted)
            if problem:
                message = f"--config.{dotted}: {problem}"
                break
        print(f"error: {message}\n  -> check the flags (python launch.py --helpfull)",
              file=sys.stderr)
        raise SystemExit(2) from None


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
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    cli()
