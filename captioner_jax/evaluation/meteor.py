"""METEOR 1.5 through long-lived `java -jar meteor-1.5.jar -stdio` processes.

The official evaluator uses pycocoevalcap's `Meteor` wrapper: for every (hypothesis,
references) pair it writes `SCORE ||| ref_1 ||| ... ||| ref_k ||| hyp` and reads back a line of
sufficient statistics; then `EVAL ||| stats_1 ||| ... ||| stats_n` returns n segment scores
and one aggregate score (statistics summed, then one METEOR computed — not the mean of the
segment scores). We send byte-identical lines (same jar, same flags `-l en -norm`, same
`-Xmx2G`, same hypothesis cleaning; `text.JVM_OPTIONS` only picks the JVM's garbage collector)
so the numbers are the jar's own, but:

* one process serves a whole evaluation (and every later one in the same Python process;
  `get_meteor()` returns the shared instance, closed at interpreter exit); a big evaluation
  splits its pairs over one jar per core (`MeteorPool`, `get_meteor_pool`): a pair's
  statistics line depends on that request alone, so the lines are the same;
* requests are pipelined: a writer thread streams all lines while the caller reads the
  answers, instead of one round trip per pair;
* a group's aggregate (`aggregates`) is asked for with ONE statistics line, the group's
  statistics already summed here exactly as the jar's `MeteorStats.addStats` sums them
  (`group_stats`), so the jar parses one line per group instead of one per pair. The jar parses
  every line with a `java.util.Scanner`, which made the per-pair `EVAL` lines as slow as the
  alignments themselves (22.7 s of 45 s on a full val_1 + val_2 evaluation). The statistics
  are whole numbers, so the sum is exact in any order and the jar computes the aggregate from
  bit-identical statistics (tests check equality with the per-pair `EVAL`).
"""
from __future__ import annotations

import atexit
import os
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from captioner_jax.evaluation import text
from captioner_jax.evaluation.text import _PYCOCO_DIR

METEOR_DIR = os.path.join(_PYCOCO_DIR, "meteor")
# pycocoevalcap's command after `java` (the official one).
METEOR_ARGS = ("-jar", "-Xmx2G", "meteor-1.5.jar", "-", "-", "-stdio", "-l", "en", "-norm")


def meteor_command() -> list[str]:
    """The jar's command line: `java`, the evaluation's JVM options (`text.JVM_OPTIONS`, read
    now, so that one setting governs every JVM the evaluation starts), the official arguments."""
    return ["java", *text.JVM_OPTIONS, *METEOR_ARGS]


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


class _MeteorRequests:
    """Requests built on `stats` and `evaluate` (shared by one jar and a pool of jars)."""

    def stats(self, hypotheses: Sequence[str], references: Sequence[Sequence[str]]
              ) -> list[str]:
        raise NotImplementedError

    def evaluate(self, stats_groups: Sequence[Sequence[str]]
                 ) -> list[tuple[np.ndarray, float]]:
        raise NotImplementedError

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

    Methods:
      stats(hyps, refs) -> list[str]: sufficient-statistics line per pair.
      evaluate(stats_groups) -> list[(segment_scores, aggregate)] per group of stats lines.
      aggregates(stats, groups) -> np.ndarray [num_groups]: the aggregate of each group of
        stats lines (indices) only, one pre-summed line per group (same numbers as
        `evaluate`, far fewer lines parsed by the jar).
      pair_scores(hyps, refs) -> np.ndarray [num_pairs]: per-pair (segment) METEOR in [0, 1].
      aggregate(hyps, refs) -> float: the jar's corpus aggregate over the pairs.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            meteor_command(), cwd=METEOR_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._stderr,
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
    """One jar per core (at most MAX_JARS) for big evaluations; one below 20k predictions,
    where a second jar's start (about 8 CPU-seconds: the paraphrase table) would not pay."""
    if num_pairs_hint < 20000:
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
    """The process-wide METEOR instance (started on first use, closed at exit)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None or _SHARED._proc is None or _SHARED._proc.poll() is not None:
            _SHARED = MeteorProcess()
            atexit.register(_SHARED.close)
        return _SHARED
