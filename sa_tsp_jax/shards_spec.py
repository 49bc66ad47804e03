"""Shard lists as the encoder configs give them: a glob, a comma list, or a list of paths.

Lives in the encoder package because nothing in the data layer turns such a spec into files;
globbing goes through the path layer (`data_prep.infra.paths.glob`), so
`gs://bucket/shards/train-*.tfrecord` works as a local pattern does.
"""
from __future__ import annotations

from collections.abc import Sequence

from data_prep.infra import paths


def resolve_shards(spec: str | Sequence[str]) -> list[str]:
    """A glob pattern, a comma-separated list or a list of them -> their files, in order
    (each pattern's matches sorted). Raises FileNotFoundError naming a pattern with no match."""
    items = [spec] if isinstance(spec, str) else list(spec)
    found: list[str] = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            matched = paths.glob(part)
            if not matched:
                raise FileNotFoundError(f"no shard matches {part!r}")
            found.extend(matched)
    if not found:
        raise FileNotFoundError(f"no shards given ({spec!r})")
    return found


def shard_signatures(shard_paths: Sequence[str]) -> list[list]:
    """[[absolute path, size in bytes, mtime in s], ...]: what a fingerprint of the input uses."""
    out = []
    for path in shard_paths:
        sig = paths.stat_signature(path)
        out.append([paths.absolute(path), sig["size"], sig["mtime"]])
    return out


def shard_sizes(shard_paths: Sequence[str]) -> list[list]:
    """[[path as given, size in bytes], ...]: what every process must agree on (mtimes of one
    file may differ between hosts that each hold a copy, sizes may not)."""
    return [[path, paths.stat_signature(path)["size"]] for path in shard_paths]
