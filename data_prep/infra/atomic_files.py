"""Atomic writes on the path layer: a reader never sees a half-written file.

Local paths: write a temporary file in the same folder, then `os.replace` (a crash leaves the
previous version intact; the temporary name starts with '.' and ends with '.tmp', and
`clean_stale_temporaries` removes ones a killed run left behind). Object stores (`gs://`):
one single-object write, which the store makes visible all at once.
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from data_prep.infra import paths


def atomic_write_bytes(path: paths.PathLike, data: bytes) -> None:
    """Writes `data` to `path` atomically (creating parent folders)."""
    if not paths.is_local(path):
        target = paths.as_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; give the file ordinary permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: paths.PathLike, text: str) -> None:
    """Writes UTF-8 `text` to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: paths.PathLike, obj: Any, **dumps_kwargs) -> None:
    """Writes `json.dumps(obj, **dumps_kwargs)` to `path` atomically (default: indent=1,
    unknown objects written with `str`)."""
    dumps_kwargs.setdefault("indent", 1)
    dumps_kwargs.setdefault("default", str)
    atomic_write_text(path, json.dumps(obj, **dumps_kwargs))


def read_json(path: paths.PathLike) -> Any:
    """Parsed JSON of `path`; a missing or invalid file raises an error naming it."""
    try:
        text = paths.read_text(path)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{os.fspath(path)}: file not found") from err
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{os.fspath(path)}: invalid JSON ({err})") from err


def clean_stale_temporaries(folder: paths.PathLike,
                            patterns=(".*.tmp", ".*.tmp-*", "*.tmp-*")) -> list[str]:
    """Removes temporary files a killed run left in a local `folder` (not recursive).

    Returns the removed paths. Remote folders have none (object writes are single puts).
    """
    if not paths.is_local(folder) or not os.path.isdir(os.fspath(folder)):
        return []
    removed = []
    for pattern in patterns:
        for path in paths.glob(os.path.join(os.fspath(folder), pattern)):
            if os.path.isfile(path):
                os.unlink(path)
                removed.append(path)
    return removed
