"""SCST rewards, computed on the host from decoded sentences.

Default reward: corpus CIDEr-D (`captioner_jax.evaluation.CiderD`, document frequencies from the
training references, as Rennie et al. and self-critical.pytorch use). Optional mix with METEOR,
e.g. 0.95 METEOR + 0.05 CIDEr-D (the later PDVC-based SCST recipe, REFERENCE.md §4).

A scorer is anything with `.score(hypotheses: list[str], references: list[list[str]]) ->
np.ndarray` of per-item scores (the evaluator's CiderD and its METEOR scorer; a toy in tests).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import numpy as np


class PerItemScorer(Protocol):
    def score(self, hypotheses: list[str], references: list[list[str]]) -> np.ndarray: ...


@dataclasses.dataclass
class CaptionReward:
    """Weighted sum of per-item scorers: reward_i = sum_s w_s * score_s(hyp_i, refs_i).

    Attributes:
      scorers: name -> (weight, scorer); names are used for logging only.
    """

    scorers: Mapping[str, tuple[float, PerItemScorer]]

    def __call__(
        self, hypotheses: Sequence[str], references: Sequence[Sequence[str]]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Returns (reward float64 [N], per-scorer raw scores {name: [N]})."""
        if len(hypotheses) != len(references):
            raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference sets")
        hyps = list(hypotheses)
        refs = [list(r) for r in references]
        total = np.zeros(len(hyps), np.float64)
        parts = {}
        for name, (weight, scorer) in self.scorers.items():
            if weight == 0.0:
                continue
            s = np.asarray(scorer.score(hyps, refs), np.float64).reshape(-1)
            if s.shape[0] != len(hyps):
                raise ValueError(f"scorer {name!r} returned {s.shape[0]} scores for {len(hyps)}")
            parts[name] = s
            total += weight * s
        return total, parts


def decode_batch(
    tokens: np.ndarray, decode: Callable[[Sequence[int]], str], eos_id: int = 0
) -> list[str]:
    """Token ids [N, L] -> N sentences, each cut at its first EOS (EOS itself dropped)."""
    out = []
    for row in np.asarray(tokens):
        stop = np.flatnonzero(row == eos_id)
        out.append(decode(row[: stop[0]] if stop.size else row))
    return out


def sample_and_greedy_rewards(
    reward_fn: CaptionReward,
    sample_sentences: Sequence[str],
    greedy_sentences: Sequence[str] | None,
    references: Sequence[Sequence[str]],
    num_samples: int,
) -> tuple[np.ndarray, np.ndarray | None, dict[str, float]]:
    """Scores the N*K samples (event-major) and the N greedy decodes in one scorer call.

    One call matters: the METEOR scorer round-trips through a Java process, and CIDEr-D
    vectorises over the whole batch.

    Returns: sample rewards [N, K], greedy rewards [N] (or None), and batch means of every
    raw score for logging ("reward/<name>_sample", "reward/<name>_greedy").
    """
    n = len(references)
    if len(sample_sentences) != n * num_samples:
        raise ValueError(f"{len(sample_sentences)} samples for {n} events x K={num_samples}")
    hyps = list(sample_sentences)
    refs = [references[i // num_samples] for i in range(n * num_samples)]
    if greedy_sentences is not None:
        hyps += list(greedy_sentences)
        refs += list(references)
    total, parts = reward_fn(hyps, refs)
    ns = n * num_samples
    logs = {}
    for name, s in parts.items():
        logs[f"reward/{name}_sample"] = float(s[:ns].mean()) if ns else 0.0
        if greedy_sentences is not None:
            logs[f"reward/{name}_greedy"] = float(s[ns:].mean()) if n else 0.0
    greedy = total[ns:] if greedy_sentences is not None else None
    return total[:ns].reshape(n, num_samples), greedy, logs
