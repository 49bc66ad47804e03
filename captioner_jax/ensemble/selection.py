"""Per-proposal caption selection rules for the M-captioner ensemble (host only, no JAX).

Every one of M captioners captions the same proposal; a rule scores each candidate caption
and the highest score wins. Ties are broken by the lower model index (the order of the
models in the config), so a selection is fully deterministic.

Rules (registry `RULES`, named by string in configs):
  * "concepts_then_idf" (default, the SA-TSP report §ensemble): the caption with the most
    unique semantic concepts wins; ties broken by the max IDF over the caption's unigrams.
  * "weighted_sum": w_concepts * #concepts + w_idf * max_idf + w_logprob * mean log-prob.
  * "mean_logprob": the caption the model itself was most confident in (mean per-token
    log-probability, as written by the predictor); a candidate without one scores -inf.

Concept counting and IDF come from the data layer's concept vocabulary and IDF table; this
module only sees them through the small `CaptionStatistics` protocol, so tests can plug in a
hand-made vocabulary (`TableCaptionStatistics`).
"""
from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

# PDVC's vocabulary rule splits on these punctuation characters; we use the same so that
# concept words and IDF keys line up with the caption vocabulary.
_PUNCTUATION = re.compile(r"[,:!_;\-.?/\"]")


def simple_tokenize(sentence: str) -> list[str]:
    """Lowercased words with PDVC's punctuation characters turned into spaces."""
    return _PUNCTUATION.sub(" ", sentence.lower()).split()


class CaptionStatistics(Protocol):
    """What a selection rule needs to know about a caption."""

    def count_unique_concepts(self, sentence: str) -> int:
        """Number of distinct semantic concepts mentioned in `sentence`."""

    def max_idf(self, sentence: str) -> float:
        """Max inverse document frequency over the unigrams of `sentence` (0 if empty)."""


@dataclasses.dataclass(frozen=True)
class TableCaptionStatistics:
    """`CaptionStatistics` from explicit tables.

    Attributes:
      concept_of_word: word -> concept id (several words may share one id, e.g. inflections
        mapped to one lemma); words not in it are not concepts.
      idf: word -> inverse document frequency (natural log, as the data layer's table).
      unknown_idf: IDF of a word missing from `idf`. 0 by default: a word never seen in the
        training captions (typically a garbled token) must not win a tie.
      tokenize: sentence -> words.
    """

    concept_of_word: Mapping[str, int]
    idf: Mapping[str, float]
    unknown_idf: float = 0.0
    tokenize: Callable[[str], list[str]] = simple_tokenize

    def count_unique_concepts(self, sentence: str) -> int:
        words = self.tokenize(sentence)
        return len({self.concept_of_word[w] for w in words if w in self.concept_of_word})

    def max_idf(self, sentence: str) -> float:
        words = self.tokenize(sentence)
        return max((self.idf.get(w, self.unknown_idf) for w in words), default=0.0)


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One model's caption for one proposal.

    Attributes:
      model: index of the model in the ensemble (0..M-1).
      sentence: the caption.
      mean_logprob: mean per-token log-probability of the caption under its model [nats], or
        None if the predictor did not write one.
    """

    model: int
    sentence: str
    mean_logprob: float | None = None


# A rule maps (candidate, statistics) to a score; higher is better. Tuples compare
# lexicographically, which is how "most concepts, then max IDF" is expressed.
Rule = Callable[[Candidate, CaptionStatistics], tuple[float, ...]]


def concepts_then_idf(candidate: Candidate, stats: CaptionStatistics) -> tuple[float, ...]:
    """SA-TSP report: (1) number of unique concepts, (2) max IDF of the caption's unigrams."""
    return (
        float(stats.count_unique_concepts(candidate.sentence)),
        float(stats.max_idf(candidate.sentence)),
    )


def mean_logprob(candidate: Candidate, stats: CaptionStatistics) -> tuple[float, ...]:
    del stats
    lp = candidate.mean_logprob
    return (-math.inf if lp is None or math.isnan(lp) else float(lp),)


def weighted_sum(
    w_concepts: float = 1.0, w_idf: float = 0.1, w_logprob: float = 0.0
) -> Rule:
    """A linear rule; a missing log-probability counts as 0 (only matters if w_logprob != 0)."""

    def rule(candidate: Candidate, stats: CaptionStatistics) -> tuple[float, ...]:
        lp = candidate.mean_logprob
        lp = 0.0 if lp is None or math.isnan(lp) else float(lp)
        return (
            w_concepts * stats.count_unique_concepts(candidate.sentence)
            + w_idf * stats.max_idf(candidate.sentence)
            + w_logprob * lp,
        )

    return rule


RULES: dict[str, Callable[..., Rule]] = {
    "concepts_then_idf": lambda: concepts_then_idf,
    "mean_logprob": lambda: mean_logprob,
    "weighted_sum": weighted_sum,
}


def make_rule(name: str, **kwargs) -> Rule:
    """Builds the rule registered as `name` (kwargs go to its factory, e.g. weights)."""
    if name not in RULES:
        raise KeyError(f"unknown ensemble rule {name!r}; known: {sorted(RULES)}")
    return RULES[name](**kwargs)


def select(
    candidates: Sequence[Candidate], rule: Rule, stats: CaptionStatistics
) -> tuple[Candidate, list[tuple[float, ...]]]:
    """Returns the winning candidate and every candidate's score (in input order).

    Ties go to the candidate with the lowest model index.
    """
    if not candidates:
        raise ValueError("no candidate captions to select from")
    scores = [rule(c, stats) for c in candidates]
    best = 0
    for i in range(1, len(candidates)):
        better = scores[i] > scores[best]
        tie_lower_model = scores[i] == scores[best] and candidates[i].model < candidates[best].model
        if better or tie_lower_model:
            best = i
    return candidates[best], scores


class CachedCaptionStatistics:
    """`CaptionStatistics` over the data layer's objects, batched and cached per sentence.

    Args:
      concept_ids: sentences -> per-sentence arrays of concept ids (the data layer's
        `ConceptVocab.concept_ids`, which POS-tags a whole batch in one call).
      max_idf: sentence -> max IDF over its unigrams (the data layer's `IdfTable.max_idf`).
    Call `prefetch(all_sentences)` once so the tagger runs once over the whole batch.
    """

    def __init__(
        self,
        concept_ids: Callable[[Sequence[str]], Sequence[Sequence[int]]],
        max_idf: Callable[[str], float],
    ):
        self._concept_ids = concept_ids
        self._max_idf = max_idf
        self._num_concepts: dict[str, int] = {}

    def prefetch(self, sentences: Sequence[str]) -> None:
        todo = sorted({s for s in sentences if s not in self._num_concepts})
        if todo:
            for s, ids in zip(todo, self._concept_ids(todo)):
                self._num_concepts[s] = len({int(i) for i in ids})

    def count_unique_concepts(self, sentence: str) -> int:
        if sentence not in self._num_concepts:
            self.prefetch([sentence])
        return self._num_concepts[sentence]

    def max_idf(self, sentence: str) -> float:
        return float(self._max_idf(sentence))
