"""One METEOR JVM scoring on several threads (`java/MeteorThreads.java`) answers as the jar.

The threaded process must give every request line the answer the jar's own `-stdio` loop
gives it (statistics, EVAL / SING scores, error lines), in request order, and die where the
jar dies; without a JDK the jar itself runs. The full val_1 + val_2 comparison (110,971
distinct pairs, byte-identical) is `benchmarks/evaluate_speed.py --compare-jars`.
"""
import os
import shutil

import numpy as np
import pytest

from captioner_jax.evaluation import meteor as meteor_module
from captioner_jax.evaluation import text as text_module
from captioner_jax.evaluation.meteor import (
    MAX_JARS,
    METEOR_ARGS,
    MeteorProcess,
    default_num_jars,
    default_threads,
    meteor_command,
    threads_classes,
)

pytestmark = pytest.mark.skipif(shutil.which("javac") is None,
                                reason="no JDK (javac): the threaded METEOR process needs one")

WORDS = ("a woman man boy girl dog paints runs jumps holds the crowd claps big small red "
         "letter sign ball quickly slowly then café “quoted” don't it's 3 1/2 , .").split()


def _sentences(rng, count, low=0, high=14):
    return [" ".join(rng.choice(WORDS, size=rng.integers(low, high))) for _ in range(count)]


@pytest.fixture(scope="module")
def processes():
    # The threaded process remembers at most 50 normal forms / stems: the requests below
    # both hit and overflow (empty) its memories.
    with pytest.MonkeyPatch.context() as m:
        m.setattr(text_module, "JVM_OPTIONS", (*text_module.JVM_OPTIONS,
                                               "-Dmeteorthreads.remember=50"))
        threaded = MeteorProcess(threads=3)
    jar = MeteorProcess(threads=1)
    yield threaded, jar
    threaded.close()
    jar.close()


def test_threaded_process_is_the_jar_scorer_on_threads(processes):
    threaded, jar = processes
    assert threaded.threads == 3 and jar.threads == 1
    argv = open(f"/proc/{threaded._proc.pid}/cmdline", "rb").read().decode().split("\0")[:-1]
    assert argv[argv.index("MeteorThreads") + 1:] == ["3", *METEOR_ARGS[3:]]
    assert "-Xmx2G" in argv and "-jar" not in argv and "-Dmeteorthreads.remember=50" in argv


def test_threaded_process_answers_every_request_as_the_jar_in_order(processes):
    threaded, jar = processes
    rng = np.random.default_rng(0)
    hyps = _sentences(rng, 600)
    refs = [_sentences(rng, int(rng.integers(1, 4)), low=1) for _ in hyps]
    want = jar.stats(hyps, refs)
    # Many more requests than threads in flight: any reordering would show. Sentences and
    # words recur (a 32-word vocabulary): remembered normal forms and stems are reused.
    assert threaded.stats(hyps, refs) == want
    assert threaded.stats(hyps[::-1], refs[::-1]) == want[::-1]
    raw = ["SCORE ||| only one field", "score ||| a man ||| a man", "HELLO", "EVAL",
           "SING ||| " + want[0], "SING ||| a ||| b", "eval ||| " + " ||| ".join(want[:5])]
    answers = [1, 1, 1, 1, 1, 1, 6]
    assert threaded._exchange(raw, answers) == jar._exchange(raw, answers)
    groups = [[0, 1, 2], [5], list(range(200))]
    np.testing.assert_array_equal(threaded.aggregates(want, groups),
                                  jar.aggregates(want, groups))
    evaluated = threaded.evaluate([want[:7], want[7:9]])
    for (seg, agg), (seg_j, agg_j) in zip(evaluated, jar.evaluate([want[:7], want[7:9]])):
        np.testing.assert_array_equal(seg, seg_j)
        assert agg == agg_j


def test_threaded_process_dies_where_the_jar_dies():
    """A statistics field the jar's Scanner cannot read ends the jar's loop with an
    exception; the threaded process ends too, and the caller gets the Java error."""
    proc = MeteorProcess(threads=2)
    try:
        assert proc.aggregate(["a man walks"], [["a man walks"]]) == 1.0
        with pytest.raises(RuntimeError, match="InputMismatchException"):
            proc._exchange(["EVAL ||| 1 2 x"], [2])
        assert proc._proc.wait(timeout=60) != 0
    finally:
        proc.close()


def test_compiled_class_is_cached_and_an_unwritable_cache_falls_back(tmp_path, monkeypatch):
    monkeypatch.setattr(meteor_module, "_CLASSES", {})
    first = threads_classes(str(tmp_path))
    assert first.startswith(str(tmp_path / "meteor_threads"))
    assert os.path.isfile(os.path.join(first, "MeteorThreads.class"))
    assert not [p for p in os.listdir(tmp_path / "meteor_threads") if p.startswith(".build")]
    monkeypatch.setattr(meteor_module, "_CLASSES", {})

    def no_compiler(*args, **kwargs):
        raise AssertionError("compiled again although the cache holds the class")

    with monkeypatch.context() as m:
        m.setattr(meteor_module.subprocess, "run", no_compiler)
        assert threads_classes(str(tmp_path)) == first
    blocked = tmp_path / "a_file"
    blocked.write_text("not a directory")
    own = threads_classes(str(blocked / "cache"))
    assert own is not None and not own.startswith(str(tmp_path))
    assert os.path.isfile(os.path.join(own, "MeteorThreads.class"))


def test_without_a_jdk_the_jar_itself_runs(monkeypatch):
    monkeypatch.setattr(meteor_module, "JAVAC", "no-such-javac-here")
    monkeypatch.setattr(meteor_module, "_CLASSES", {})
    assert threads_classes() is None
    started = []

    class FakePopen:
        def __init__(self, args, **kwargs):
            started.append(list(args))

    monkeypatch.setattr(meteor_module.subprocess, "Popen", FakePopen)
    assert MeteorProcess(threads=4).threads == 1
    assert started == [meteor_command()] and "-jar" in started[0]
    cores = max(1, min(MAX_JARS, os.cpu_count() or 1))
    assert default_num_jars(50000) == cores and default_num_jars(100) == 1


def test_thread_count_setting(monkeypatch):
    monkeypatch.setenv("DVC_METEOR_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.setenv("DVC_METEOR_THREADS", "0")
    assert default_threads() == 1
    monkeypatch.setenv("DVC_METEOR_THREADS", "many")
    with pytest.raises(ValueError, match="DVC_METEOR_THREADS"):
        default_threads()
    monkeypatch.delenv("DVC_METEOR_THREADS")
    assert default_threads() == max(1, min(meteor_module.MAX_THREADS, os.cpu_count() or 1))
    # With a JDK and several threads, one process serves a big evaluation.
    monkeypatch.setenv("DVC_METEOR_THREADS", "2")
    assert default_num_jars(50000) == 1
    monkeypatch.setenv("DVC_METEOR_THREADS", "1")
    assert default_num_jars(50000) == max(1, min(MAX_JARS, os.cpu_count() or 1))
