"""The interruption scenario the trainers' exact-resume tests share: a kill -9 inside an
evaluation, then a SIGTERM, then the same command again (tests/test_captioner_train.py,
tests/test_scst_train.py)."""
from __future__ import annotations

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
