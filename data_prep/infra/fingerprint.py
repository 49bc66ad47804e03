"""Fingerprinted outputs: a resumable stage never mixes outputs of other inputs with new ones.

A stage describes what its outputs depend on as a JSON-able dict (input file sizes/mtimes
from `paths.stat_signature`, parameter hashes, the settings that matter, a format version)
and calls `reconcile` before it writes anything. `workdir/fingerprint.json` records the
fingerprint of the outputs in the workdir:

- same fingerprint: the outputs are reused (resume);
- another fingerprint, or outputs without one: without `force` the stage stops with
  `FingerprintMismatchError` saying what changed and how to force; with `force` process 0
  deletes the old outputs (the stage's `remove_outputs`) and records the new fingerprint.

Used by `sa_tsp_extract` (features) and `caption_video` (shards, features, captions).
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from data_prep.infra import paths
from data_prep.infra.atomic_files import atomic_write_json, read_json

log = logging.getLogger(__name__)

FINGERPRINT_FILE = "fingerprint.json"


class FingerprintMismatchError(ValueError):
    """The workdir holds outputs made from other inputs; the message says what changed."""


def file_signatures(files) -> list:
    """[[path, size, mtime] or [path, None, None] when missing] of each file, in order."""
    out = []
    for path in files:
        try:
            sig = paths.stat_signature(path)
            out.append([str(path), sig["size"], sig["mtime"]])
        except (FileNotFoundError, OSError):
            out.append([str(path), None, None])
    return out


def tree_signatures(folder: str, names: tuple[str, ...] = ()) -> list:
    """`file_signatures` of every file under `folder` (recursively; only under the entries
    `names` of it when given), sorted by path; [] when `folder` does not exist."""
    if not paths.is_dir(folder):
        return []

    def walk(path: str) -> list[str]:
        if paths.is_file(path):
            return [path]
        if not paths.is_dir(path):
            return []
        return [f for name in paths.list_dir(path) for f in walk(paths.join(path, name))]

    roots = [paths.join(folder, n) for n in names] if names else [folder]
    return file_signatures(sorted(f for root in roots for f in walk(root)))


def describe_changes(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Readable differences of two fingerprints: "key: old -> new" for plain values, the
    changed entries of [path, size, mtime] lists, "key differs" for long values (hashes)."""
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        name = f"{prefix}{key}"
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            changes += describe_changes(a, b, name + ".")
        elif _is_signature_list(a) and _is_signature_list(b):
            before = {e[0]: e[1:] for e in a}
            after = {e[0]: e[1:] for e in b}
            changes += [f"{name}: no longer given: {p}" for p in sorted(set(before) - set(after))]
            changes += [f"{name}: new: {p}" for p in sorted(set(after) - set(before))]
            changes += [f"{name}: changed (size, mtime {tuple(before[p])} -> "
                        f"{tuple(after[p])}): {p}"
                        for p in sorted(set(before) & set(after)) if before[p] != after[p]]
        elif len(repr(a)) > 60 or len(repr(b)) > 60:
            changes.append(f"{name} differs")
        else:
            changes.append(f"{name}: {a!r} -> {b!r}")
    return changes


def _is_signature_list(value) -> bool:
    return isinstance(value, list) and all(
        isinstance(e, list | tuple) and len(e) == 3 and isinstance(e[0], str) for e in value)


def reconcile(workdir: str, fingerprint: dict, *, force: bool, has_outputs: bool,
              remove_outputs: Callable[[], None], what: str,
              describe: Callable[[dict, dict], list[str]] = describe_changes,
              force_hint: str = "--config.force=True") -> None:
    """Makes the outputs in `workdir` belong to `fingerprint` (module docstring). Every
    process calls it; process 0 alone deletes and writes.

    Args:
      workdir: where `fingerprint.json` lives.
      fingerprint: the current fingerprint (JSON-able; equal on every process).
      force: delete outputs of another fingerprint instead of stopping.
      has_outputs: whether the workdir holds outputs (of any fingerprint).
      remove_outputs: deletes them (called on process 0 only, under `force`).
      what: the outputs in words ("features", "captions"), for the message.
      describe: (old, new) -> list of changes, for the message.
      force_hint: how the user forces a redo.
    Raises:
      FingerprintMismatchError: stale outputs and no `force`.
    """
    from data_prep.infra import distributed  # imports JAX: only when called

    fp_path = paths.join(workdir, FINGERPRINT_FILE)
    old = read_json(fp_path) if paths.exists(fp_path) else None
    distributed.check_same_across_processes([old, has_outputs], f"the state of {workdir}")
    if old == fingerprint:
        return
    stale = old is not None or has_outputs
    if stale and not force:
        changes = (describe(old, fingerprint) if old is not None
                   else [f"outputs without a {FINGERPRINT_FILE}"])
        raise FingerprintMismatchError(
            f"{workdir} holds {what} made from other inputs ({'; '.join(changes)}). "
            f"Rerun with {force_hint} to delete them and redo the work, or use another "
            "workdir.")
    if distributed.is_main_process():
        if stale:
            log.warning("force: deleting the %s in %s made from other inputs", what, workdir)
            remove_outputs()
        paths.make_dirs(workdir)
        atomic_write_json(fp_path, fingerprint)
    distributed.sync(f"fingerprint {workdir}")
