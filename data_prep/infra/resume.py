"""Exact resume for every trainer (sa_tsp_train, captioner_train, captioner_scst): the metric
window and the evaluations, on top of the loop kit (`data_prep.infra.loop`).

Resume contract (issue 13): a run killed (or preempted) anywhere and rerun with the same
command ends with the same parameters, `metrics.jsonl` (up to `time` and rate keys), best
checkpoint, predictions and summary as an uninterrupted run. Three pieces make that so:

- the Orbax checkpoint (`data_prep.infra.checkpointing`) restores model state and the Grain
  iterator, and `MetricWriter.truncate_after(step)` drops the lines of recomputed steps;
- `ResumableWindow`: "loss" (and every logged metric) is the mean over the steps since the
  last log line; the steps of a window that a checkpoint cuts are saved beside it
  (`<workdir>/metric_windows/<step>.json`, written before the checkpoint), so the first
  line after a resume averages the same steps as without the interruption;
- `EvaluationLog`: an evaluation is recorded as done only after its predictions, best
  checkpoint and summary are written; on resume an evaluation that was due at the restored
  step and is not recorded runs again (a kill inside an evaluation cannot skip it), and its
  metrics line is written after the record (restored from it if a kill fell in between).

Every process calls these functions; only process 0 writes files, and what process 0 read is
broadcast, so all processes take the same decisions (collective checkpoint saves).
"""
from __future__ import annotations

import logging

import jax
import numpy as np

from data_prep.infra import distributed, paths
from data_prep.infra.atomic_files import atomic_write_json, read_json
from data_prep.infra.checkpointing import Checkpointer
from data_prep.infra.loop import MetricWindow, itstime
from data_prep.infra.metrics import MetricWriter, read_metrics
from data_prep.infra.preemption import PreemptionGuard

log = logging.getLogger(__name__)


class ResumableWindow(MetricWindow):
    """A `MetricWindow` whose pending steps are saved beside each checkpoint.

    Args:
      directory: where `<step>.json` files go (`<workdir>/metric_windows`).
    """

    def __init__(self, directory: str):
        super().__init__()
        self.directory = directory

    def _path(self, step: int) -> str:
        return paths.join(self.directory, f"{int(step)}.json")

    def save(self, step: int) -> None:
        """Writes the pending steps of checkpoint `step` (call just before saving it).

        Values keep their dtype (float32 device metrics, float64 host metrics), so the means
        after a resume are bitwise those of an uninterrupted run."""
        pending = jax.device_get(self._pending)
        if not distributed.is_main_process():
            return
        record = [{k: [np.asarray(v).dtype.str, float(np.asarray(v))] for k, v in m.items()}
                  for m in pending]
        atomic_write_json(self._path(step), {"step": int(step), "pending": record})

    def restore(self, step: int) -> None:
        """Replaces the pending steps with those saved at checkpoint `step` (all processes)."""
        record = None
        if distributed.is_main_process() and paths.exists(self._path(step)):
            record = read_json(self._path(step))["pending"]
        record = distributed.allgather_objects(record)[0]
        self._pending = []
        if record is None:
            if step:
                log.warning("no metric window saved for checkpoint %d (%s): the first logged "
                            "window after the resume is partial", step, self._path(step))
            return
        for m in record:
            self.add({k: np.asarray(v, np.dtype(dtype)) for k, (dtype, v) in m.items()})

    def prune(self, keep_steps) -> None:
        """Removes the files of checkpoints that no longer exist (process 0)."""
        if not distributed.is_main_process() or not paths.is_dir(self.directory):
            return
        keep = {f"{int(s)}.json" for s in keep_steps}
        for name in paths.list_dir(self.directory):
            if name.endswith(".json") and name not in keep:
                paths.remove(paths.join(self.directory, name))


class EvaluationLog:
    """The evaluations a run completed: `path` holds `{"evals": [{"step": s, metrics...}],
    ...extra keys}` (the SCST summary adds "xe" and "final").

    Process 0 reads and writes the file; the other processes get process 0's copy.
    """

    def __init__(self, path: str, extra: dict | None = None):
        self.path = path
        data = None
        if distributed.is_main_process() and paths.exists(path):
            data = read_json(path)
        data = distributed.allgather_objects(data)[0]
        self.data = data if data is not None else dict(extra or {}, evals=[])

    @property
    def evals(self) -> list[dict]:
        return self.data["evals"]

    def done(self, step: int) -> bool:
        return any(int(e["step"]) == int(step) for e in self.evals)

    def entry(self, step: int) -> dict | None:
        for e in self.evals:
            if int(e["step"]) == int(step):
                return e
        return None

    def record(self, step: int, metrics: dict, **extra) -> None:
        """Marks the evaluation at `step` done (after all its outputs are written)."""
        self.evals[:] = [e for e in self.evals if int(e["step"]) != int(step)]
        self.evals.append(dict(metrics, step=int(step)))
        self.evals.sort(key=lambda e: int(e["step"]))
        self.data.update(extra)
        self.write()

    def write(self) -> None:
        if distributed.is_main_process():
            atomic_write_json(self.path, self.data)


def metrics_line(entry: dict) -> dict:
    """The numbers of an evaluation's metrics (or record), as written to metrics.jsonl and
    the record: without the step and without clock readings (`*seconds`: they are logged),
    so the files of a resumed or multi-host run equal those of an uninterrupted one."""
    return {k: v for k, v in entry.items()
            if k != "step" and not k.endswith("seconds") and isinstance(v, int | float)}


def restore_eval_line(writer: MetricWriter, evals: EvaluationLog, step: int) -> None:
    """After a resume at `step`: writes the metrics line of a recorded evaluation at `step`
    that a kill between recording it and writing its line left out."""
    entry = evals.entry(step)
    if entry is None or not writer.active:
        return
    lines = read_metrics(writer.path) if paths.exists(writer.path) else []
    if not any(r.get("step") == step and r.get("split") == "val" for r in lines):
        writer.write(step, metrics_line(entry), split="val")


def enter_resources(stack, workdir: str, keep_checkpoints: int, *, best: bool = False,
                    close=None):
    """What a trainer's loop holds, entered on `stack` (a contextlib.ExitStack) so that every
    exit path closes it: (step checkpointer `workdir/checkpoints` keeping `keep_checkpoints`,
    best-parameters checkpointer `workdir/best` or None, metrics writer, preemption guard,
    resumable window `workdir/metric_windows`); `close` (e.g. a feature loader's) is called
    on exit too."""
    ckpt = stack.enter_context(Checkpointer(paths.join(workdir, "checkpoints"),
                                            max_to_keep=int(keep_checkpoints)))
    best_ckpt = (stack.enter_context(Checkpointer(paths.join(workdir, "best"), max_to_keep=1))
                 if best else None)
    writer = stack.enter_context(MetricWriter(workdir))
    guard = stack.enter_context(PreemptionGuard())
    if close is not None:
        stack.callback(close)
    window = ResumableWindow(paths.join(workdir, "metric_windows"))
    return ckpt, best_ckpt, writer, guard, window


def restore_or_init(ckpt, window: ResumableWindow, writer: MetricWriter, abstract, shardings,
                    init_fn, data_iterator):
    """(state, start step): the latest checkpoint (state placed with `shardings`, iterator and
    metric window restored, metrics past it dropped) or `init_fn()` at step 0."""
    step = ckpt.latest_step()
    if step is None:
        writer.truncate_after(0)  # lines of an earlier attempt that never checkpointed
        return init_fn(), 0
    target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                          abstract, shardings)
    state = ckpt.restore(step, target, data_iterator)
    window.restore(step)
    writer.truncate_after(step)
    log.info("resumed from the checkpoint of step %d", step)
    return state, int(step)


def save_checkpoint(ckpt, window: ResumableWindow, step: int, state, data_iterator,
                    every: int, force: bool = False) -> bool:
    """Saves checkpoint `step` when `itstime(step, every)` or `force` (and not saved yet):
    the window file first, then the collective Orbax save; stale window files pruned."""
    if not (force or itstime(step, every, last=False)) or step == ckpt.latest_step():
        return False
    window.save(step)
    saved = ckpt.save(step, state, data_iterator, force=True)
    if saved:
        window.prune(ckpt.all_steps())
    return saved
