"""The small kit every trainer's loop is built from (big_vision style, no framework).

- `itstime`: the one cadence rule (every N steps, and at the last step);
- `MetricWindow`: device metrics of the steps since the last log line -> their mean on the
  host, with the NaN guard; "loss" in every trainer's metrics file means this window mean;
- `mesh_for_batch`: the configured mesh, checked against the global batch and the hosts;
- cleanup: `Checkpointer`, `MetricWriter` and `PreemptionGuard` are context managers, so a
  trainer's `run` holds them in one `with` block (contextlib.ExitStack) and closes them on
  every exit path.
"""
from __future__ import annotations

import jax
import numpy as np

from data_prep.infra import mesh as mesh_lib
from data_prep.infra.progress import check_finite


def itstime(step: int, every: int, total: int | None = None, *, last: bool = True) -> bool:
    """True every `every` steps (never when `every` <= 0) and, with `last`, at `total`."""
    if last and total is not None and step == total:
        return True
    return every > 0 and step % every == 0


class MetricWindow:
    """Collects the per-step metric dicts (device arrays, no sync) of a logging window."""

    def __init__(self):
        self._pending: list[dict] = []

    def add(self, metrics: dict) -> None:
        self._pending.append(metrics)

    def __len__(self) -> int:
        return len(self._pending)

    def flush(self, step: int, finite_key: str = "loss") -> dict[str, float]:
        """Mean of each metric over the window (one host transfer); raises FloatingPointError
        naming `step` when any step's `finite_key` is NaN/inf. Empty dict if nothing pending."""
        if not self._pending:
            return {}
        host = jax.device_get(self._pending)
        self._pending = []
        for offset, m in enumerate(host):
            if finite_key in m:
                check_finite(m[finite_key], step - len(host) + 1 + offset, finite_key)
        return {k: float(np.mean([m[k] for m in host])) for k in host[0]}


def mesh_for_batch(mesh_axes, global_batch: int, num_devices: int = 0):
    """(mesh, per-host batch) for `mesh_axes` over the first `num_devices` devices (0 = all).

    Raises ValueError when the global batch cannot be split evenly over the data axes and
    the processes (each host feeds global_batch / process_count examples).
    """
    devices = jax.devices()
    n = int(num_devices or len(devices))
    mesh = mesh_lib.make_mesh([tuple(a) for a in mesh_axes], devices=devices[:n])
    num_data = int(np.prod([mesh.shape[a] for a in mesh_lib.data_axes(mesh)]))
    hosts = jax.process_count()
    if global_batch % num_data or global_batch % hosts:
        raise ValueError(f"global batch {global_batch} is not divisible by the {num_data} data "
                         f"shards of mesh {tuple(mesh_axes)} and the {hosts} processes")
    return mesh, global_batch // hosts
