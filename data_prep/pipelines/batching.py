"""Batch helpers shared by the input pipelines and the predictors."""
from __future__ import annotations

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
