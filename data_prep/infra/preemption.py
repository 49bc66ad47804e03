"""Preemption: stop at the next step boundary with a checkpoint when the job gets SIGTERM.

A preempted Cloud TPU VM (and most schedulers: SLURM, Kubernetes) sends SIGTERM and waits a
grace period. Trainers ask `guard.should_stop(step)` once per step; when it says yes they save
a checkpoint of that step on every host and return, and rerunning the same command resumes
exactly (model state and Grain iterator are in the checkpoint).

Multi-process runs use JAX's own preemption service (`jax.distributed` starts it): its
`reached_preemption_sync_point(step)` is True at the *same* step on every process once any
process got the signal. A single process installs a plain Python SIGTERM handler.
"""
from __future__ import annotations

import logging
import signal
import threading

import jax
from jax.experimental import multihost_utils

log = logging.getLogger(__name__)


class PreemptionGuard:
    """Use as a context manager around the training loop (restores the old handler)."""

    def __init__(self):
        self._requested = False
        self._previous = None
        self._multi = False

    def __enter__(self) -> PreemptionGuard:
        self._multi = jax.process_count() > 1
        if not self._multi and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._on_signal)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None

    def _on_signal(self, signum, frame) -> None:
        del frame
        log.warning("received signal %d: will checkpoint and stop at the next step", signum)
        self._requested = True

    def request(self) -> None:
        """Asks for a stop as SIGTERM would (tests, or a caller's own signal handling)."""
        self._requested = True

    def should_stop(self, step: int) -> bool:
        """True when the run must checkpoint `step` and exit (same answer on every host)."""
        if self._multi:
            try:
                return bool(multihost_utils.reached_preemption_sync_point(int(step)))
            except RuntimeError:  # preemption service not running (e.g. disabled by flag)
                return False
        return self._requested
