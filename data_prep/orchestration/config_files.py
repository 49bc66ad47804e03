"""Config files and overrides: `path/config.py[:arg]` -> a locked ConfigDict.

What `launch.py --config` does for one stage, done here for the stages a pipeline or
`caption_video` starts: the same file, the same `get_config(arg)`, the same locked config
(an override of a key the config lacks is an error).
"""
from __future__ import annotations

import difflib
import importlib.util
import pathlib

from data_prep.infra import paths
from data_prep.infra.atomic_files import atomic_write_text, clean_stale_temporaries

# Relative config paths are relative to the repository root, as on the command line.
REPO_ROOT = str(pathlib.Path(__file__).resolve().parents[2])


def load_config_file(spec: str):
    """`path/to/config.py[:arg]` -> the ConfigDict of its `get_config(arg)` (locked).

    Relative paths are resolved against the repository root. Config files are Python
    modules, so they must be local files.
    """
    path, _, arg = spec.partition(":")
    full = paths.resolve(REPO_ROOT, path)
    if not paths.is_local(full):
        raise ValueError(f"config file {full} (from {spec!r}): config files are Python "
                         "modules and must be local")
    if not paths.is_file(full):
        raise FileNotFoundError(f"config file {full} (from {spec!r}) not found")
    module_spec = importlib.util.spec_from_file_location(f"_config_{abs(hash(full))}", full)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    config = module.get_config(arg) if arg else module.get_config()
    config.lock()
    return config


def missing_key_message(config, dotted: str) -> str | None:
    """Why `dotted` ("optim.lrr") is not a key of `config`, naming the level where the path
    breaks, the keys that exist there and the closest one; None when it is a key."""
    node, walked = config, []
    for key in dotted.split("."):
        keys = list(node.keys()) if hasattr(node, "keys") else None
        where = ".".join(walked) or "the top level"
        if keys is None:
            return (f"config key {'.'.join(walked)!r} is a value "
                    f"({type(node).__name__}), not a group: {dotted!r} does not exist")
        if key not in keys:
            close = difflib.get_close_matches(key, [str(k) for k in keys], n=1)
            guess = f" Did you mean {'.'.join([*walked, close[0]])!r}?" if close else ""
            return (f"the config has no key {key!r} at {where}; keys there: "
                    f"{', '.join(sorted(str(k) for k in keys))}.{guess}")
        node = node[key]
        walked.append(key)
    return None


def apply_overrides(config, overrides: dict) -> None:
    """Sets dotted keys (`"optim.lr": 0.1`) on a locked config: unknown keys raise KeyError
    naming the keys that exist at that level."""
    for dotted, value in overrides.items():
        problem = missing_key_message(config, dotted)
        if problem:
            raise KeyError(f"override {dotted!r}: {problem}")
        *parents, leaf = dotted.split(".")
        node = config
        for key in parents:
            node = node[key]
        node[leaf] = value


def write_resolved_config(config, workdir: str) -> None:
    """Creates `workdir` and writes `workdir/config.json`, the config the stage runs with
    (after the arg and overrides), atomically, on process 0 only. Steps that share a workdir
    (training, then prediction) leave the last one; the pipeline's done markers name each
    step's config spec."""
    from data_prep.infra.distributed import is_main_process  # imports JAX: only when called

    paths.make_dirs(workdir)
    if is_main_process():
        atomic_write_text(paths.join(workdir, "config.json"),
                          config.to_json_best_effort(indent=1, sort_keys=True) + "\n")


def clean_workdir_temporaries(workdir: str) -> list[str]:
    """Removes temporary files an interrupted run left (`.name.tmp-*`, `*.tmp-PID`, `.*.tmp`)
    in a local `workdir` and its direct subfolders (predictions/, features/, html/, ...).
    Call only while holding the workdir's lock: the temporaries of a live run are not stale.
    Returns the removed paths."""
    if not paths.is_local(workdir) or not paths.is_dir(workdir):
        return []
    removed = clean_stale_temporaries(workdir)
    for name in paths.list_dir(workdir):
        sub = paths.join(workdir, name)
        if paths.is_dir(sub):
            removed += clean_stale_temporaries(sub)
    return removed
