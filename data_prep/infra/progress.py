"""Progress lines with rate and ETA for long loops, and the NaN guard."""
from __future__ import annotations

import logging
import math
import time

import numpy as np


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:d}:{s:02d}"


class Progress:
    """Logs `desc step k/N | loss x | x steps/s | y items/s | ETA` at most every `log_every_s`
    seconds.

    The rate is measured since the first `update` (so compilation of the first step does not
    distort the ETA for long) and reported by `rates()` for metrics files. The first step
    compiles the step function (seconds to minutes on a CPU), so a line says so up front and
    another when the first step is done, instead of silence. `show(metrics)` puts the latest
    logged loss into the lines.
    """

    def __init__(
        self,
        total_steps: int,
        items_per_step: int | None = None,
        log_every_s: float = 10.0,
        desc: str = "train",
        item_name: str = "items",
    ):
        self.total_steps = int(total_steps)
        self.items_per_step = items_per_step
        self.log_every_s = log_every_s
        self.desc = desc
        self.item_name = item_name
        self._first_step = None
        self._first_time = None
        self._last_log = -math.inf
        self._last_step = None
        self._shown: dict[str, float] = {}
        self._created = time.perf_counter()
        if self.total_steps > 0:
            logging.info("%s: %d steps; the first step compiles the step function (cached "
                         "for later runs in the persistent compilation cache)", desc,
                         self.total_steps)

    def show(self, metrics: dict) -> None:
        """Shows `loss` (when present) of the latest logged window in the following lines."""
        if "loss" in metrics:
            self._shown = {"loss": float(metrics["loss"])}

    def rates(self, step: int) -> dict[str, float]:
        """steps/s (and items/s) since the first update; empty before two updates."""
        if self._first_time is None or step <= self._first_step:
            return {}
        elapsed = max(time.perf_counter() - self._first_time, 1e-9)
        steps_per_s = (step - self._first_step) / elapsed
        out = {"steps_per_s": steps_per_s}
        if self.items_per_step:
            out[f"{self.item_name}_per_s"] = steps_per_s * self.items_per_step
        return out

    def update(self, step: int, force: bool = False) -> None:
        now = time.perf_counter()
        if self._first_time is None:
            self._first_step, self._first_time = step, now
            logging.info("%s: first step done after %.1f s (compilation included)", self.desc,
                         now - self._created)
        self._last_step = step
        if not force and now - self._last_log < self.log_every_s:
            return
        self._last_log = now
        rates = self.rates(step)
        parts = [f"{self.desc} step {step}/{self.total_steps}"]
        parts += [f"{k} {v:.4f}" for k, v in self._shown.items()]
        if rates:
            parts.append(f"{rates['steps_per_s']:.2f} steps/s")
            key = f"{self.item_name}_per_s"
            if key in rates:
                parts.append(f"{rates[key]:.1f} {self.item_name}/s")
            remaining = max(0, self.total_steps - step) / max(rates["steps_per_s"], 1e-9)
            parts.append(f"ETA {format_duration(remaining)}")
        logging.info(" | ".join(parts))


def check_finite(value, step: int, what: str = "loss") -> float:
    """Returns float(value); raises FloatingPointError naming the step if it is NaN/inf."""
    value = float(np.asarray(value))
    if not math.isfinite(value):
        raise FloatingPointError(
            f"{what} is {value} at step {step}: training diverged. Lower the learning rate, "
            "check the inputs of this step, or resume from an earlier checkpoint."
        )
    return value
