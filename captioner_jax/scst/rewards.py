"""SCST rewards, computed on the host from decoded sentences.

Default reward: corpus CIDEr-D (`captioner_jax.evaluation.CiderD`, document frequencies from the
training references, as Rennie et al. and self-critical.pytorch use). Optional mix with METEOR,
e.g. 0.95 METEOR + 0.05 CIDEr-D (the later PDVC-based SCST recipe, docs/reference.md §4).

A scorer is anything with `.score(hypotheses: list[str], references: list[list[str]]) ->
np.ndarray` of per-item scores (the evaluator's CiderD and its METEOR scorer; a toy in tests).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
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


def caption_texts(tokens: np.ndarray, vocab) -> list[str]:
    """int [N, L] token ids (no BOS) -> N reward texts: the vocabulary's words up to the first
    EOS (id 0), joined by single spaces (no trailing ".", unlike `vocab.decode`)."""
    out = []
    for row in np.asarray(tokens):
        stop = np.flatnonzero(row == 0)
        row = row[: stop[0]] if stop.size else row
        out.append(" ".join(vocab.word(int(ix)) for ix in row))
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
    raw score for logging ("<name>_sample", "<name>_greedy").
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
        logs[f"{name}_sample"] = float(s[:ns].mean()) if ns else 0.0
        if greedy_sentences is not None:
            logs[f"{name}_greedy"] = float(s[ns:].mean()) if n else 0.0
    greedy = total[ns:] if greedy_sentences is not None else None
    return total[:ns].reshape(n, num_samples), greedy, logs


def batch_rewards(
    captions: np.ndarray,
    event_valid: np.ndarray,
    sample_tokens: np.ndarray,
    greedy_tokens: np.ndarray | None,
    vocab,
    reward_fn: CaptionReward,
    num_samples: int,
    baseline: str,
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """The SCST trainer's host step: rewards and advantages of one batch.

    Args:
      captions: int [M, L] GT tokens of the M = videos x events slots (BOS first).
      event_valid: bool [M], real events (padding slots and padding videos False).
      sample_tokens: int [M * K, L'] samples (event-major); greedy_tokens: int [M, L'] or None.
      vocab: the caption vocabulary (`word(id)`); reward_fn, baseline: see `CaptionReward`
        and `loss.advantages`.
    Returns:
      advantage float32 [M * K] (0 on padding), sample mask float32 [M * K, L'] (through the
      first EOS, 0 on padding), and float metrics: reward_sample, reward_greedy (with greedy
      decodes), advantage_abs, sample_len, events, <scorer>_sample, <scorer>_greedy.
    """
    from captioner_jax.scst.loss import advantages
    from captioner_jax.scst.sampler import mask_through_eos

    k = int(num_samples)
    event_valid = np.asarray(event_valid, bool).reshape(-1)
    m = event_valid.shape[0]
    rows = np.flatnonzero(event_valid)  # the (video, event) slots that are real events
    refs = [[r] for r in caption_texts(np.asarray(captions)[rows, 1:], vocab)]
    s_tok = np.asarray(sample_tokens).reshape(m, k, -1)
    samples = caption_texts(s_tok[rows].reshape(len(rows) * k, -1), vocab)
    greedy = None
    if greedy_tokens is not None:
        greedy = caption_texts(np.asarray(greedy_tokens)[rows], vocab)
    sample_r, greedy_r, logs = sample_and_greedy_rewards(reward_fn, samples, greedy, refs, k)
    adv_rows = advantages(sample_r, greedy_r, baseline)  # [R, K]
    adv = np.zeros((m, k), np.float32)
    adv[rows] = adv_rows
    valid = np.repeat(event_valid, k)
    mask = np.asarray(mask_through_eos(s_tok.reshape(m * k, -1))) * valid[:, None]
    some = len(rows) > 0
    metrics = {"reward_sample": float(sample_r.mean()) if some else 0.0,
               "advantage_abs": float(np.abs(adv_rows).mean()) if some else 0.0,
               "sample_len": float(mask[valid].sum(1).mean()) if some else 0.0,
               "events": float(len(rows))}
    if greedy_r is not None:
        metrics["reward_greedy"] = float(greedy_r.mean()) if some else 0.0
    metrics.update(logs)
    return adv.reshape(-1), mask.astype(np.float32), metrics
