"""METEOR 1.5 through long-lived `java -jar meteor-1.5.jar -stdio` processes.

The official evaluator uses pycocoevalcap's `Meteor` wrapper: for every (hypothesis,
references) pair it writes `SCORE ||| ref_1 ||| ... ||| ref_k ||| hyp` and reads back a line of
sufficient statistics; then `EVAL ||| stats_1 ||| ... ||| stats_n` returns n segment scores
and one aggregate score (statistics summed, then one METEOR computed — not the mean of the
segment scores). We send byte-identical lines (same jar, same flags `-l en -norm`, same
`-Xmx2G`, same hypothesis cleaning; `text.JVM_OPTIONS` only picks the JVM's garbage collector)
so the numbers are the jar's own, but:

* one process serves a whole evaluation (and every later one in the same Python process;
  `get_meteor()` returns the shared instance, closed at interpreter exit) and scores on one
  thread per core (below); without a JDK a big evaluation splits its pairs over one jar per
  core instead (`MeteorPool`, `get_meteor_pool`): a pair's statistics line depends on that
  request alone, so the lines are the same either way;
* requests are pipelined: a writer thread streams all lines while the caller reads the
  answers, instead of one round trip per pair;
* a group's aggregate (`aggregates`) is asked for with ONE statistics line, the group's
  statistics already summed here exactly as the jar's `MeteorStats.addStats` sums them
  (`group_stats`), so the jar parses one line per group instead of one per pair. The jar parses
  every line with a `java.util.Scanner`, which made the per-pair `EVAL` lines as slow as the
  alignments themselves (22.7 s of 45 s on a full val_1 + val_2 evaluation). The statistics
  are whole numbers, so the sum is exact in any order and the jar computes the aggregate from
  bit-identical statistics (tests check equality with the per-pair `EVAL`).

Where a JDK is present (`javac`), the shared process is not the jar's own `Meteor` main but
`java/MeteorThreads.java` (this project's, compiled once into the cache directory): the jar's
scorer built from the same arguments, answering the same request lines with the same lines in
the same order, but scoring them on one thread per core, each with its own copy of the scorer
(the jar's copy constructor: own stemmer, shared read-only synonym and paraphrase tables). One
JVM then loads the paraphrase table and warms up its JIT once instead of once per jar, and it
remembers the normal forms of sentences and the stems of words across requests: a full
val_1 + val_2 evaluation on 2 cores took 22.1 s cold / 14.6 s warm with 46.5 Java
CPU-seconds against 33.7 s / 21.1 s / 78.6 for two jars (medians of 3, `python
benchmarks/evaluate_speed.py --skip-slow --compare-jars --repeats 3`), with byte-identical
statistics for all 110,971 distinct pairs. Without a JDK, or with `DVC_METEOR_THREADS=1`, the
jar itself runs, as many jars as before (`MeteorPool`).
"""
from __future__ import annotations

import abc
import atexit
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from captioner_jax.evaluation import text
from captioner_jax.evaluation.text import _PYCOCO_DIR

log = logging.getLogger(__name__)

METEOR_DIR = os.path.join(_PYCOCO_DIR, "meteor")
METEOR_JAR = "meteor-1.5.jar"
# pycocoevalcap's command after `java` (the official one).
METEOR_ARGS = ("-jar", "-Xmx2G", METEOR_JAR, "-", "-", "-stdio", "-l", "en", "-norm")
THREADS_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "java",
                              "MeteorThreads.java")
MAX_THREADS = 8
JAVAC = "javac"


def meteor_command(threads: int = 1, classes: str | None = None) -> list[str]:
    """The JVM's command line: `java`, the evaluation's JVM options (`text.JVM_OPTIONS`, read
    now, so that one setting governs every JVM the evaluation starts), then the official
    arguments: for `threads` == 1 the jar's own main; else `MeteorThreads` (compiled in
    `classes`, see `threads_classes`) with `threads` workers and the jar's arguments."""
    if threads <= 1:
        return ["java", *text.JVM_OPTIONS, *METEOR_ARGS]
    if classes is None:
        raise ValueError("a threaded METEOR process needs the compiled MeteorThreads classes")
    jar_flags = METEOR_ARGS[3:]  # "- - -stdio -l en -norm"
    return ["java", *text.JVM_OPTIONS, METEOR_ARGS[1], "-cp",
            os.pathsep.join((METEOR_JAR, classes)), "MeteorThreads", str(threads), *jar_flags]


def default_threads() -> int:
    """Scoring threads of the shared process: `DVC_METEOR_THREADS` if set, else one per core
    (at most MAX_THREADS). 1 means the jar's own main (no compilation needed)."""
    value = os.environ.get("DVC_METEOR_THREADS", "").strip()
    if value:
        try:
            threads = int(value)
        except ValueError:
            raise ValueError(f"DVC_METEOR_THREADS must be an integer, got {value!r}") from None
        return max(1, threads)
    return max(1, min(MAX_THREADS, os.cpu_count() or 1))


_CLASSES: dict[str, str | None] = {}
_CLASSES_LOCK = threading.Lock()


def threads_classes(cache_dir: str | None = None) -> str | None:
    """Directory holding the compiled `MeteorThreads` class, or None without a usable JDK.

    Compiled once per (source, jar) content into `<cache>/meteor_threads/<digest>/` (local
    disk; default `$XDG_CACHE_HOME/sa_tsp_dvc`): `javac` writes into a fresh temporary
    directory that is then renamed into place, so concurrent processes never see a partial
    class. `--release 8` makes the class run on any JVM from Java 8 on. An unwritable cache
    falls back to a temporary directory of this process. Memoised per process.
    """
    from captioner_jax.evaluation.token_cache import default_cache_dir

    cache_dir = cache_dir or default_cache_dir()
    with _CLASSES_LOCK:
        if cache_dir not in _CLASSES:
            _CLASSES[cache_dir] = _compile_threads(cache_dir)
        return _CLASSES[cache_dir]


def _compile_threads(cache_dir: str) -> str | None:
    javac = shutil.which(JAVAC)
    if javac is None:
        log.info("no %s on PATH: METEOR runs as the jar's own main (one thread per jar)", JAVAC)
        return None
    digest = hashlib.sha256()
    for name in (THREADS_SOURCE, os.path.join(METEOR_DIR, METEOR_JAR)):
        with open(name, "rb") as f:
            digest.update(f.read())
    final = os.path.join(cache_dir, "meteor_threads", digest.hexdigest()[:24])
    if os.path.isfile(os.path.join(final, "MeteorThreads.class")):
        return final
    for parent in (os.path.dirname(final), None):
        try:
            if parent is not None:
                os.makedirs(parent, exist_ok=True)
            build = tempfile.mkdtemp(prefix=".build-", dir=parent)
        except OSError:
            continue
        proc = subprocess.run(
            [javac, "--release", "8", "-Xlint:-options", "-nowarn", "-cp",
             os.path.join(METEOR_DIR, METEOR_JAR), "-d", build, THREADS_SOURCE],
            capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            shutil.rmtree(build, ignore_errors=True)
            log.warning("compiling %s failed (METEOR runs as the jar's own main): %s",
                        THREADS_SOURCE, proc.stderr[-2000:])
            return None
        if parent is None:  # no cache: this process's own copy
            atexit.register(shutil.rmtree, build, True)
            return build
        try:
            os.rename(build, final)
        except OSError:  # another process put it there first (same content)
            shutil.rmtree(build, ignore_errors=True)
        if os.path.isfile(os.path.join(final, "MeteorThreads.class")):
            return final
    return None


def score_line(hypothesis: str, references: Sequence[str]) -> str:
    """The `SCORE` request pycocoevalcap's `Meteor._stat` sends for one pair.

    Line breaks would split the request and desynchronise the protocol (pycocoevalcap never
    receives any: its inputs are PTB-tokenized); we turn them into spaces.
    """
    hypothesis = hypothesis.replace("|||", "").replace("  ", " ")
    line = " ||| ".join(("SCORE", " ||| ".join(references), hypothesis))
    return line.replace("\n", " ").replace("\r", " ") if "\n" in line or "\r" in line else line


# Field layout of a statistics line (MeteorStats.toString, 4 stages):
#   0 test length, 1 reference length, 2 test function words, 3 reference function words,
#   4 + 4*k .. 7 + 4*k: stage k matches (test content, reference content, test function,
#   reference function), 20 chunks, 21 test word matches, 22 reference word matches.
_NUM_STATS_FIELDS = 23
_CHUNKS = 20


def group_stats(lines: Sequence[str], groups: Sequence[Sequence[int]]
                ) -> tuple[list[str], np.ndarray]:
    """What `EVAL` accumulates for each group of statistics lines, as one line per group.

    lines: statistics lines (each parsed once, however many groups use it); groups: indices
    into `lines`, each non-empty. Mirrors `MeteorStats.addStats`: every field is summed,
    except that the chunks of a "perfect" line (all test and reference words matched, in one
    chunk) are NOT added. Returns (summed line per group, exact [num_groups] bool): a group is
    not exact when a field is not a whole number (then only the jar's own sequential float
    sum is guaranteed identical, and the caller sends the group's lines instead).
    """
    # The jar writes single-space-separated fields; one split of the joined text is the
    # cheapest parse (0.6 s for the 111k distinct pairs of a full val_1 + val_2 evaluation).
    bad = next((line for line in lines if line.count(" ") != _NUM_STATS_FIELDS - 1), None)
    if bad is not None:
        raise ValueError(f"unexpected METEOR statistics line: {bad!r}")
    values = np.asarray(" ".join(lines).split(), np.float64).reshape(-1, _NUM_STATS_FIELDS)
    test_matches = values[:, 4:20:4].sum(1) + values[:, 6:20:4].sum(1)
    ref_matches = values[:, 5:20:4].sum(1) + values[:, 7:20:4].sum(1)
    perfect = ((test_matches == values[:, 0]) & (ref_matches == values[:, 1])
               & (values[:, _CHUNKS] == 1.0))
    values[perfect, _CHUNKS] = 0.0
    whole = np.all(values == np.round(values), axis=1) & (np.abs(values).max(axis=1) < 2.0**52)
    index = np.concatenate([np.asarray(g, np.int64) for g in groups])
    starts = np.r_[0, np.cumsum([len(g) for g in groups])[:-1]]
    sums = np.add.reduceat(values[index], starts, axis=0)
    exact = np.logical_and.reduceat(whole[index], starts)
    # Java's Double.toString of a whole number below 1e7 is "<int>.0"; Scanner reads it back.
    return [" ".join(f"{int(v)}.0" for v in row) for row in sums], exact


class _MeteorRequests(abc.ABC):
    """Requests built on `stats` and `evaluate` (shared by one jar and a pool of jars)."""

    @abc.abstractmethod
    def stats(self, hypotheses: Sequence[str], references: Sequence[Sequence[str]]
              ) -> list[str]:
        """Statistics line per (hypothesis, references) pair."""

    @abc.abstractmethod
    def evaluate(self, stats_groups: Sequence[Sequence[str]]
                 ) -> list[tuple[np.ndarray, float]]:
        """One `EVAL` per group of statistics lines: (segment scores, aggregate)."""

    def aggregates(self, stats: Sequence[str], groups: Sequence[Sequence[int]]) -> np.ndarray:
        """The jar's aggregate METEOR of each group of `stats` lines (indices), [num_groups]."""
        if any(len(g) == 0 for g in groups):
            raise ValueError("METEOR EVAL needs at least one statistics line per group")
        if not groups:
            return np.zeros((0,), np.float64)
        summed, exact = group_stats(stats, groups)
        requests = [[line] if ok else [stats[j] for j in g]
                    for line, ok, g in zip(summed, exact, groups)]
        return np.asarray([agg for _, agg in self.evaluate(requests)], np.float64)

    def pair_scores(
        self, hypotheses: Sequence[str], references: Sequence[Sequence[str]],
        chunk: int = 2000,
    ) -> np.ndarray:
        """Per-pair METEOR (the jar's segment score), shape [num_pairs]. Usable as a reward."""
        stats = self.stats(hypotheses, references)
        groups = [stats[i:i + chunk] for i in range(0, len(stats), chunk)]
        if not groups:
            return np.zeros((0,), np.float64)
        return np.concatenate([seg for seg, _ in self.evaluate(groups)])

    def aggregate(self, hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
        """The jar's aggregate METEOR over all pairs (what `Meteor.compute_score` returns)."""
        stats = self.stats(hypotheses, references)
        return float(self.aggregates(stats, [range(len(stats))])[0])


class MeteorProcess(_MeteorRequests):
    """A running METEOR jar. Thread-safe; all methods block until the answers are read.

    threads > 1: the jar's scorer on that many threads in one JVM (`MeteorThreads`; the same
    answer lines); where it cannot be compiled, the jar's own main (`self.threads` == 1).

    Methods:
      stats(hyps, refs) -> list[str]: sufficient-statistics line per pair.
      evaluate(stats_groups) -> list[(segment_scores, aggregate)] per group of stats lines.
      aggregates(stats, groups) -> np.ndarray [num_groups]: the aggregate of each group of
        stats lines (indices) only, one pre-summed line per group (same numbers as
        `evaluate`, far fewer lines parsed by the jar).
      pair_scores(hyps, refs) -> np.ndarray [num_pairs]: per-pair (segment) METEOR in [0, 1].
      aggregate(hyps, refs) -> float: the jar's corpus aggregate over the pairs.
    """

    def __init__(self, threads: int = 1):
        classes = threads_classes() if threads > 1 else None
        self.threads = threads if classes is not None else 1
        self._lock = threading.Lock()
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            meteor_command(self.threads, classes), cwd=METEOR_DIR, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._stderr,
        )

    # -- low level ------------------------------------------------------------------------
    def _exchange(self, lines: Sequence[str], answers_per_line: Sequence[int]) -> list[str]:
        """Writes `lines` from a thread while reading sum(answers_per_line) answer lines."""
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError(f"METEOR process is not running{self._stderr_tail()}")
        payload = "".join(line + "\n" for line in lines).encode()
        error: list[BaseException] = []

        def write():
            try:
                # Chunked so the reader can start while large requests are still being sent.
                for start in range(0, len(payload), 1 << 16):
                    self._proc.stdin.write(payload[start:start + (1 << 16)])
                self._proc.stdin.flush()
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                error.append(e)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        total = int(sum(answers_per_line))
        out = []
        readline = self._proc.stdout.readline
        for _ in range(total):
            line = readline()
            if not line:
                writer.join()
                try:  # its last words reach stderr before it ends
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
                raise RuntimeError(f"METEOR process died{self._stderr_tail()}")
            out.append(line.decode().strip())
        writer.join()
        if error:
            raise RuntimeError(f"writing to METEOR failed: {error[0]}{self._stderr_tail()}")
        return out

    def _stderr_tail(self) -> str:
        try:
            self._stderr.seek(0)
            text = self._stderr.read().decode(errors="replace")[-2000:]
        except (OSError, ValueError):
            return ""
        return f": {text}" if text else ""

    # -- public ---------------------------------------------------------------------------
    def stats(self, hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> list[str]:
        """Statistics line per (hypothesis, references) pair (pycocoevalcap `_stat`)."""
        if len(hypotheses) != len(references):
            raise ValueError(f"{len(hypotheses)} hypotheses vs {len(references)} references")
        lines = [score_line(h, r) for h, r in zip(hypotheses, references)]
        with self._lock:
            return self._exchange(lines, [1] * len(lines))

    def evaluate(
        self, stats_groups: Sequence[Sequence[str]]
    ) -> list[tuple[np.ndarray, float]]:
        """One `EVAL` per group: (segment scores [len(group)], aggregate score) each."""
        groups = [list(g) for g in stats_groups]
        if any(not g for g in groups):
            raise ValueError("METEOR EVAL needs at least one statistics line per group")
        lines = ["EVAL ||| " + " ||| ".join(g) for g in groups]
        with self._lock:
            out = self._exchange(lines, [len(g) + 1 for g in groups])
        result, pos = [], 0
        for g in groups:
            seg = np.asarray([float(x) for x in out[pos:pos + len(g)]], dtype=np.float64)
            result.append((seg, float(out[pos + len(g)])))
            pos += len(g) + 1
        return result

    def close(self) -> None:
        with self._lock:
            if self._proc is not None:
                try:
                    self._proc.stdin.close()
                except OSError:
                    pass
                self._proc.kill()
                self._proc.wait()
                self._proc = None
                self._stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class MeteorPool(_MeteorRequests):
    """Several running jars serving as one (`MeteorProcess`'s methods), e.g. one per core.

    `stats` hands out the pairs in chunks to whichever jar is free (a jar still starting or
    slowed down simply takes fewer chunks) and returns the answers in pair order. The same
    lines as one jar: a `SCORE` answer depends on that request line alone (the jar keeps no
    state between requests; tests check the pool against one jar). `evaluate` (and the
    aggregates built on it) goes to the first jar. Closing is the members' business (the
    shared ones close at exit).
    """

    def __init__(self, members: Sequence[MeteorProcess], chunk: int = 4000):
        if not members:
            raise ValueError("a METEOR pool needs at least one jar")
        self.members = list(members)
        self.chunk = chunk

    def stats(self, hypotheses: Sequence[str], references: Sequence[Sequence[str]]
              ) -> list[str]:
        if len(hypotheses) != len(references):
            raise ValueError(f"{len(hypotheses)} hypotheses vs {len(references)} references")
        starts = list(range(0, len(hypotheses), self.chunk))
        if len(self.members) == 1 or len(starts) <= 1:
            return self.members[0].stats(hypotheses, references)
        answers: list[list[str] | None] = [None] * len(starts)
        next_chunk = iter(range(len(starts)))
        lock = threading.Lock()

        def serve(jar: MeteorProcess) -> None:
            while True:
                with lock:
                    c = next(next_chunk, None)
                if c is None:
                    return
                a = starts[c]
                answers[c] = jar.stats(hypotheses[a:a + self.chunk],
                                       references[a:a + self.chunk])

        with ThreadPoolExecutor(max_workers=len(self.members)) as pool:
            for future in [pool.submit(serve, jar) for jar in self.members]:
                future.result()
        return [line for part in answers for line in part]

    def evaluate(self, stats_groups: Sequence[Sequence[str]]
                 ) -> list[tuple[np.ndarray, float]]:
        return self.members[0].evaluate(stats_groups)


_SHARED: MeteorProcess | None = None
_SHARED_LOCK = threading.Lock()
_EXTRA: list[MeteorProcess] = []  # further shared jars of `get_meteor_pool`
MAX_JARS = 4  # each jar holds the paraphrase table (about 1 GB)


def default_num_jars(num_pairs_hint: int) -> int:
    """1 where the shared process scores on several threads (`default_threads`, a JDK);
    else one jar per core (at most MAX_JARS) for big evaluations and one below 20k
    predictions, where a second jar's start (about 8 CPU-seconds: the paraphrase table)
    would not pay."""
    if num_pairs_hint < 20000 or (default_threads() > 1 and threads_classes() is not None):
        return 1
    return max(1, min(MAX_JARS, os.cpu_count() or 1))


def get_meteor_pool(num_jars: int) -> MeteorPool:
    """The shared jar plus num_jars - 1 further shared jars (started now, closed at exit)."""
    first = get_meteor()
    with _SHARED_LOCK:
        _EXTRA[:] = [m for m in _EXTRA if m._proc is not None and m._proc.poll() is None]
        while len(_EXTRA) < num_jars - 1:
            jar = MeteorProcess()
            atexit.register(jar.close)
            _EXTRA.append(jar)
        return MeteorPool([first, *_EXTRA[:max(num_jars - 1, 0)]])


def get_meteor() -> MeteorProcess:
    """The process-wide METEOR instance (started on first use, closed at exit), with
    `default_threads()` scoring threads."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None or _SHARED._proc is None or _SHARED._proc.poll() is not None:
            _SHARED = MeteorProcess(default_threads())
            atexit.register(_SHARED.close)
        return _SHARED
