"""Multi-process helpers: who writes, gathering host results, and fail-fast consistency checks.

With one process every function here is a cheap no-op, so stages call them unconditionally.
"""
from __future__ import annotations

import hashlib
import json
import pickle

import jax
import numpy as np
from jax.experimental import multihost_utils


def is_main_process() -> bool:
    """True on process 0: the only process that writes shared files (metrics, reports, JSON
    outputs). Checkpoints are the exception: every process takes part in Orbax's saves."""
    return jax.process_index() == 0


def to_host(tree):
    """A pytree of (possibly multi-host) jax.Arrays -> numpy, gathered across processes along
    the leading axis (each process contributes its addressable rows)."""
    if jax.process_count() > 1:
        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree.map(np.asarray, tree)


def allgather_objects(obj) -> list:
    """[obj of process 0, obj of process 1, ...] for any picklable `obj` (e.g. the prediction
    dicts of each host's slice), identical on every process."""
    if jax.process_count() == 1:
        return [obj]
    data = np.frombuffer(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), np.uint8)
    sizes = multihost_utils.process_allgather(np.array([data.size], np.int64))
    padded = np.zeros(int(sizes.max()), np.uint8)
    padded[:data.size] = data
    gathered = multihost_utils.process_allgather(padded)
    return [pickle.loads(gathered[i, :int(sizes[i, 0])].tobytes())
            for i in range(jax.process_count())]


def fingerprint(value) -> str:
    """sha256 of a JSON-able value (keys sorted): what `check_same_across_processes` compares."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_same_across_processes(value, what: str) -> None:
    """Raises RuntimeError (on every process, not a hang) if `value` differs between processes.

    Used for the resolved config and the input file lists: two hosts started with different
    configs or data would otherwise train on mismatched batches or deadlock in a collective.
    """
    if jax.process_count() == 1:
        return
    digest = np.frombuffer(bytes.fromhex(fingerprint(value)), np.uint32).astype(np.int64)
    all_digests = multihost_utils.process_allgather(digest)
    differing = [i for i in range(all_digests.shape[0])
                 if not np.array_equal(all_digests[i], all_digests[0])]
    if differing:
        raise RuntimeError(
            f"{what} differs between processes (process 0 vs {differing}): start every host "
            "with the same command, config overrides and data.")


def sync(name: str) -> None:
    """Barrier across processes (no-op with one)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)
