"""Orbax checkpoints of the train state together with the Grain iterator state.

A preempted or killed run restarts from the latest *complete* checkpoint (Orbax writes to a
temporary directory and renames it when finalised) and, because the iterator state is saved
with the model, continues on exactly the next batch.

On the CPU backend arrays are saved without Orbax's replica-parallel slicing (as Orbax itself
does on GPU): that slicing splits every replicated array between its replicas with one eager
`lax.slice` per array and device, i.e. one small XLA compilation each; with 8 CPU devices a
first save of a 254-array encoder state spent 7-18 s compiling them to write 2.7 MiB
(`benchmarks/checkpoint_save.py`). Replica 0 writes each array instead; the files and the
restored values are the same.
"""
from __future__ import annotations

import logging

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp

from data_prep.infra import paths

_STATE = "state"
_DATA = "data_iter"


def register_array_handler(replica_parallel: bool) -> None:
    """Registers (process-wide) Orbax's default jax.Array handler with replica-parallel saving
    on or off."""
    # The store Orbax's default handler records per-array metadata with; Orbax exports no
    # public name for it.
    from orbax.checkpoint._src.metadata import array_metadata_store

    ocp.type_handlers.register_type_handler(
        jax.Array,
        ocp.type_handlers.ArrayHandler(use_replica_parallel=replica_parallel,
                                       array_metadata_store=array_metadata_store.Store()),
        override=True)


def configure_array_saving() -> bool:
    """Turns replica-parallel saving off on the CPU backend (see the module docstring);
    returns whether it did. Idempotent; call after `jax.distributed.initialize` (it asks for
    the backend)."""
    if jax.default_backend() != "cpu":
        return False
    register_array_handler(replica_parallel=False)
    return True


class Checkpointer:
    """Saves/restores `{state, data_iter}` under `directory/<step>/`.

    Args:
      directory: where checkpoints live (created if missing).
      max_to_keep: how many recent checkpoints to keep.
      save_every_steps: `save()` is a no-op at other steps unless `force=True`.
      async_save: write in the background (call `wait()` before reading them back).
    """

    def __init__(
        self,
        directory: str,
        max_to_keep: int = 3,
        save_every_steps: int = 1,
        async_save: bool = False,
    ):
        configure_array_saving()
        # Orbax needs an absolute local path; a gs:// URI is passed through unchanged.
        self.directory = paths.absolute(directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            save_interval_steps=max(1, int(save_every_steps)),
            create=True,
            enable_async_checkpointing=async_save,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state, data_iterator=None, force: bool = False) -> bool:
        """Saves `state` (a pytree of arrays) and the iterator; returns whether it saved."""
        items = {_STATE: ocp.args.StandardSave(state)}
        if data_iterator is not None:
            items[_DATA] = grain.checkpoint.CheckpointSave(data_iterator)
        saved = self._manager.save(int(step), args=ocp.args.Composite(**items), force=force)
        if saved:
            logging.info("saved checkpoint at step %d to %s", step, self.directory)
        return saved

    def restore(self, step: int, abstract_state, data_iterator=None):
        """Restores the state at `step` into the shapes/shardings of `abstract_state`.

        `abstract_state` is a pytree of `jax.ShapeDtypeStruct` (with `.sharding` for sharded
        restore) or of arrays. When `data_iterator` is given its state is restored in place.
        """
        items = {_STATE: ocp.args.StandardRestore(abstract_state)}
        if data_iterator is not None:
            items[_DATA] = grain.checkpoint.CheckpointRestore(data_iterator)
        restored = self._manager.restore(int(step), args=ocp.args.Composite(**items))
        logging.info("restored checkpoint at step %d from %s", step, self.directory)
        return restored[_STATE]

    def restore_to_host(self, step: int):
        """The state saved at `step` as NumPy arrays (the same tree), whatever devices saved it.

        `restore(step, None)` places the arrays as they were saved, which Orbax refuses
        ("Topology mismatch") on any other device set: a captioner trained on 8 devices or 2
        hosts could not be read by a 1-device prediction, nor a released run on a machine
        other than the one that wrote it. The shapes and dtypes come from the checkpoint's
        own metadata; the caller places the arrays (e.g. a jit with its mesh's shardings).
        Call it on every process (each reads the whole state).
        """
        reader = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(read_only=True),
            item_handlers={_STATE: ocp.StandardCheckpointHandler()})
        try:
            metadata = reader.item_metadata(int(step))[_STATE]
            tree = getattr(metadata, "tree", metadata)
            target = jax.tree.map(lambda m: np.empty(m.shape, m.dtype), tree)
            restored = reader.restore(
                int(step), args=ocp.args.Composite(**{_STATE: ocp.args.StandardRestore(target)}))
        finally:
            reader.close()
        logging.info("restored checkpoint at step %d from %s to host memory", step,
                     self.directory)
        return restored[_STATE]

    def restore_latest(self, abstract_state, shardings=None, data_iterator=None):
        """(state, step) of the latest checkpoint, or (None, 0) when there is none.

        `abstract_state` gives shapes and dtypes (arrays or ShapeDtypeStructs); `shardings`,
        a matching pytree of shardings, places the restored arrays (as `jit(init)` would).
        """
        step = self.latest_step()
        if step is None:
            return None, 0
        if shardings is not None:
            abstract_state = jax.tree.map(
                lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                abstract_state, shardings)
        return self.restore(step, abstract_state, data_iterator), int(step)

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
