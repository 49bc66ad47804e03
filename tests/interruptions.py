"""The interruption scenario the trainers' exact-resume tests share: a kill -9 inside an
evaluation, then a SIGTERM, then the same command again (tests/test_captioner_train.py,
tests/test_scst_train.py), after an uninterrupted run to compare with."""
from __future__ import annotations

import compile_cache_watch
import pytest

from data_prep.infra import resume
from data_prep.infra.preemption import PreemptionGuard


class Killed(Exception):
    """Stands for a kill -9: nothing after the raise runs."""


def run_interrupted(run, config, workdir: str, kill_in_eval: int, preempt: int) -> list:
    """Runs `run(config, workdir)` three times: killed when the evaluation of step
    `kill_in_eval` is about to be recorded (its predictions, best checkpoint and summary are
    written: the kill falls between them and the record that says it completed), then
    preempted at step `preempt` (what SIGTERM does: `PreemptionGuard.request()`), then to the
    end. Returns ["killed", result of the preempted run, result of the last run]."""
    events = []
    record = resume.EvaluationLog.record

    def killed_record(self, step, *args, **kwargs):
        if step == kill_in_eval and "killed" not in events:
            events.append("killed")
            raise Killed
        return record(self, step, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(resume.EvaluationLog, "record", killed_record)
        with pytest.raises(Killed):
            run(config, workdir)
    with pytest.MonkeyPatch.context() as mp:
        should_stop = PreemptionGuard.should_stop

        def preempted(self, step):
            if step == preempt:
                self.request()
            return should_stop(self, step)

        mp.setattr(PreemptionGuard, "should_stop", preempted)
        events.append(run(config, workdir))
    events.append(run(config, workdir))
    return events


def straight_and_interrupted(run, config, tmp_path_factory, name: str, kill_in_eval: int,
                             preempt: int):
    """`run(config, workdir)` uninterrupted into a fresh `<name>_straight`, then
    `run_interrupted` into `<name>_interrupted`, with the persistent compilation cache watched
    (`compile_cache_watch`). Returns (straight, interrupted, events, (cache log, its mark after
    the uninterrupted run))."""
    with compile_cache_watch.watch() as cache_log:
        straight = tmp_path_factory.mktemp(f"{name}_straight")
        run(config, str(straight))
        mark = cache_log.mark()
        interrupted = tmp_path_factory.mktemp(f"{name}_interrupted")
        events = run_interrupted(run, config, str(interrupted), kill_in_eval, preempt)
    return straight, interrupted, events, (cache_log, mark)
