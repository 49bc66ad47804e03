"""Device mesh, shardings and global batches (the jit + NamedSharding model; no pmap).

Axis conventions (MaxText-style): "data" is pure data parallelism, "fsdp" shards both the
batch and the parameters, "model" would shard parameters only. A size of -1 means "all the
remaining devices".
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

# Mesh axes over which the leading (batch) dimension of inputs is split.
DATA_AXES = ("data", "fsdp")


def make_mesh(
    axes: Sequence[tuple[str, int]] = (("data", -1),), devices: Sequence | None = None
) -> Mesh:
    """Builds a Mesh from `(name, size)` pairs; one size may be -1 (the rest of the devices).

    Raises ValueError if the sizes do not multiply to the number of devices.
    """
    devices = list(jax.devices() if devices is None else devices)
    names = tuple(str(name) for name, _ in axes)
    sizes = [int(size) for _, size in axes]
    if sizes.count(-1) > 1:
        raise ValueError(f"mesh {tuple(axes)}: at most one axis may have size -1")
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if len(devices) % known:
            raise ValueError(f"mesh {tuple(axes)}: {len(devices)} devices not divisible by {known}")
        sizes[sizes.index(-1)] = len(devices) // known
    if math.prod(sizes) != len(devices):
        raise ValueError(
            f"mesh {tuple(axes)} needs {math.prod(sizes)} devices, have {len(devices)}"
        )
    try:
        from jax.experimental import mesh_utils

        grid = mesh_utils.create_device_mesh(sizes, devices)
    except (ValueError, NotImplementedError, AssertionError):  # e.g. odd CPU device counts
        grid = np.asarray(devices, dtype=object).reshape(sizes)
    return Mesh(grid, names)


def data_axes(mesh: Mesh) -> tuple[str, ...]:
    """The mesh axes that split the batch dimension."""
    return tuple(a for a in mesh.axis_names if a in DATA_AXES)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding of inputs: leading dim over the data-like axes, the rest replicated."""
    return NamedSharding(mesh, P(data_axes(mesh)))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def _fsdp_spec(shape: tuple[int, ...], axis_size: int, min_size: int) -> P:
    """Shards the largest dimension divisible by the fsdp axis; small leaves stay replicated."""
    if axis_size <= 1 or math.prod(shape) < min_size:
        return P()
    for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
        if shape[dim] % axis_size == 0:
            spec = [None] * len(shape)
            spec[dim] = "fsdp"
            return P(*spec)
    return P()


def param_shardings(abstract_params, mesh: Mesh, rule: str = "replicate", min_size: int = 2**14):
    """A pytree of NamedSharding for `abstract_params` (arrays or ShapeDtypeStructs).

    rule="replicate": every leaf on every device (data parallelism).
    rule="fsdp": leaves with >= `min_size` elements are split along their largest dimension
    divisible by the "fsdp" axis size (ZeRO-3 style); requires an "fsdp" mesh axis.
    """
    if rule == "replicate":
        return jax.tree.map(lambda _: replicated(mesh), abstract_params)
    if rule == "fsdp":
        if "fsdp" not in mesh.axis_names:
            raise ValueError(f"rule 'fsdp' needs an 'fsdp' mesh axis, mesh has {mesh.axis_names}")
        size = mesh.shape["fsdp"]
        return jax.tree.map(
            lambda x: NamedSharding(mesh, _fsdp_spec(tuple(x.shape), size, min_size)),
            abstract_params,
        )
    raise ValueError(f"unknown sharding rule {rule!r} (expected 'replicate' or 'fsdp')")


def global_batch(host_batch: dict[str, np.ndarray], sharding: NamedSharding) -> dict:
    """Per-host numpy arrays -> global jax.Arrays split over the batch axis.

    Non-numeric entries (e.g. video ids as strings) stay on the host and are dropped here;
    keep them from the host batch if you need them. Each host passes its own slice of the
    global batch (global batch = per-host batch x process count).
    """
    out = {}
    for key, value in host_batch.items():
        value = np.asarray(value)
        if value.dtype.kind in "biuf":
            out[key] = jax.make_array_from_process_local_data(sharding, value)
    return out
