"""Batch helpers shared by the input pipelines and the predictors."""
from __future__ import annotations

import grain
import numpy as np


def pad_batch(batch: dict, batch_size: int) -> dict:
    """Pads a partial batch to `batch_size` by repeating its first example with valid=False."""
    n = len(batch["valid"])
    if n == batch_size:
        return batch
    out = {}
    for key, value in batch.items():
        filler = np.repeat(value[:1], batch_size - n, axis=0)
        if key == "valid":
            filler = np.zeros_like(filler)
        out[key] = np.concatenate([value, filler], axis=0)
    return out


class HostBatchSlice(grain.MapDataset):
    """This host's part of every global batch: host i reads elements
    [k*B + i*b, k*B + (i+1)*b) of global batch k (B = b * process_count).

    Built on the *global* element stream (already shuffled, repeated and mapped with its
    global index), so every element is computed exactly as in a 1-process run, and the
    global array assembled by `make_array_from_process_local_data` (host i's rows after host
    i-1's) holds the 1-process batch in the 1-process order: N processes give the same
    batches, on the same devices, as one.
    """

    def __init__(self, parent: grain.MapDataset, per_host_batch: int, process_index: int,
                 process_count: int):
        super().__init__(parent)
        if not 0 <= process_index < process_count:
            raise ValueError(f"process_index {process_index} not in [0, {process_count})")
        self._b, self._i, self._p = int(per_host_batch), int(process_index), int(process_count)

    def __len__(self) -> int:
        # Only whole global batches: a partial last one would be split unevenly over hosts.
        return len(self._parent) // (self._b * self._p) * self._b

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        batch, offset = divmod(int(index), self._b)
        return self._parent[batch * self._b * self._p + self._i * self._b + offset]

    def __str__(self) -> str:
        return f"HostBatchSlice(b={self._b}, process={self._i}/{self._p})"
