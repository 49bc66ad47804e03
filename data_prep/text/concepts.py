"""Semantic concept vocabulary (the SA-TSP report's SCC labels) and per-sentence concepts.

SA-TSP: "we select the top N frequent nouns, verbs, adjectives, and adverbs from the
ground-truth sentences in ActivityNet Captions as the vocabulary of semantic concepts." The
report gives no N, tokeniser, lemmatisation or stop list; ours (all configurable in
`ConceptOptions`):
- tokens: runs of letters (clitics split: "man 's"), numbers and punctuation marks; the
  sentences' case is kept for tagging (the tagger uses it), keys are lowercased;
- POS: NLTK's averaged perceptron tagger over whole sentences (`pos_tag_sents`); groups
  noun = NN*, verb = VB*, adj = JJ*, adv = RB/RBR/RBS, number = CD (off by default);
- lemmatisation (on by default): WordNet with the tag's POS (see `nltk_resources.Lemmatizer`),
  so "circles"/"circle" and "moving"/"moves" are one concept;
- a stop list of auxiliaries and function-like adverbs (`DEFAULT_STOP_WORDS`), and keys of
  one character are dropped;
- a concept is a lowercased key, whatever its POS; its `pos` in the JSON is the group it was
  tagged with most often. Ranking: count descending, then the key (deterministic).
A sentence's concepts are the vocabulary keys among its tokens whose tag is in a kept group.
"""
from __future__ import annotations

import dataclasses
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from data_prep.annotations.errors import read_json_file
from data_prep.infra.atomic_files import atomic_write_json
from data_prep.text import nltk_resources

POS_GROUPS = ("noun", "verb", "adj", "adv", "number")
_WORDNET_POS = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}
DEFAULT_STOP_WORDS = (
    # auxiliaries, modals and light verbs
    "be", "have", "do", "get", "can", "could", "will", "would", "shall", "should", "may",
    "might", "must", "let",
    # adverbs that carry no visual content
    "not", "then", "also", "there", "here", "again", "still", "just", "very", "now", "so",
    "as", "too", "even", "well", "finally", "first", "next", "later", "soon", "once", "only",
    "eventually", "really", "almost", "quite", "rather",
    # ActivityNet's narration verbs ("is seen", "is shown", "begins", "continues")
    "see", "show", "seem", "begin", "continue", "start", "keep",
    # quantifier-like adjectives
    "other", "more", "several", "many", "few", "same", "different", "various",
)
_TOKEN_RE = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?|\d+(?:[.,]\d+)*|[^\w\s]")


def pos_group(tag: str) -> str | None:
    """Penn Treebank tag -> concept POS group, or None."""
    if tag.startswith("NN"):
        return "noun"
    if tag.startswith("VB"):
        return "verb"
    if tag.startswith("JJ"):
        return "adj"
    if tag in ("RB", "RBR", "RBS"):
        return "adv"
    if tag == "CD":
        return "number"
    return None


def tokenize(sentence: str) -> list[str]:
    """Word, number and punctuation tokens of a raw sentence (case kept), clitics split as
    the Penn Treebank does (the tagger was trained on it): "doesn't" -> "does n't",
    "man's" -> "man 's". Punctuation helps the tagger and is never a concept.
    """
    out = []
    for token in _TOKEN_RE.findall(sentence):
        if "'" not in token or len(token) == 1:
            out.append(token)
        elif token.lower().endswith("n't") and len(token) > 3:
            out.extend((token[:-3], token[-3:]))
        else:
            head, _, tail = token.partition("'")
            out.extend((head, "'" + tail))
    return out


@dataclasses.dataclass(frozen=True)
class ConceptOptions:
    """How concepts are extracted and selected.

    Attributes:
      top_n: vocabulary size (the most frequent keys).
      pos_groups: kept POS groups (subset of POS_GROUPS).
      include_numbers: also keep CD tokens (adds "number" to pos_groups).
      lemmatize: WordNet lemmatisation of keys.
      stop_words: keys never used as concepts (compared after lemmatisation).
      min_count: keys seen fewer times are never kept.
    """

    top_n: int = 1000
    pos_groups: tuple[str, ...] = ("noun", "verb", "adj", "adv")
    include_numbers: bool = False
    lemmatize: bool = True
    stop_words: tuple[str, ...] = DEFAULT_STOP_WORDS
    min_count: int = 1

    def __post_init__(self):
        bad = [g for g in self.pos_groups if g not in POS_GROUPS]
        if bad:
            raise ValueError(f"unknown POS groups {bad}; known: {POS_GROUPS}")
        if self.top_n <= 0:
            raise ValueError(f"top_n must be > 0, got {self.top_n}")

    @property
    def kept_groups(self) -> frozenset[str]:
        return frozenset(self.pos_groups) | ({"number"} if self.include_numbers else set())


class ConceptExtractor:
    """Sentence -> list of (key, POS group) for the tokens of kept groups (stop words out)."""

    def __init__(self, options: ConceptOptions):
        self.options = options
        nltk_resources.require("tagger", *(("wordnet",) if options.lemmatize else ()))
        self._lemmatizer = nltk_resources.Lemmatizer() if options.lemmatize else None
        self._groups = options.kept_groups
        self._stop = frozenset(options.stop_words)

    def key(self, token: str, group: str) -> str:
        word = token.lower()
        if self._lemmatizer is not None and group in _WORDNET_POS:
            word = self._lemmatizer(word, _WORDNET_POS[group])
        return word

    def extract(self, sentences: Sequence[str], workers: int = 1,
                ) -> list[list[tuple[str, str]]]:
        """Per sentence, the (key, group) of each kept token, in sentence order.

        `workers` > 1 tags in that many processes (worth it from a few thousand sentences).
        """
        tagged = nltk_resources.pos_tag_sents([tokenize(s) for s in sentences], workers)
        out = []
        for tokens in tagged:
            items = []
            for token, tag in tokens:
                group = pos_group(tag)
                if group not in self._groups:
                    continue
                key = self.key(token, group)
                if (len(key) > 1 or group == "number") and key not in self._stop:
                    items.append((key, group))
            out.append(items)
        return out


@dataclasses.dataclass
class ConceptVocab:
    """The concept vocabulary: `words[i]` is concept i, with its POS group and count."""

    words: list[str]
    pos: list[str]
    counts: list[int]
    options: ConceptOptions
    num_sentences: int = 0

    def __post_init__(self):
        self.word_to_id = {w: i for i, w in enumerate(self.words)}
        self._extractor: ConceptExtractor | None = None

    @property
    def size(self) -> int:
        return len(self.words)

    def _get_extractor(self) -> ConceptExtractor:
        if self._extractor is None:
            self._extractor = ConceptExtractor(self.options)
        return self._extractor

    def concept_ids(self, sentences: Sequence[str], workers: int = 1) -> list[np.ndarray]:
        """Per sentence, the sorted unique concept ids (int32 [k])."""
        out = []
        for items in self._get_extractor().extract(list(sentences), workers):
            ids = {self.word_to_id[k] for k, _ in items if k in self.word_to_id}
            out.append(np.array(sorted(ids), np.int32))
        return out

    def multi_hot(self, sentences: Sequence[str]) -> np.ndarray:
        """float32 [len(sentences), size]: 1 where the sentence has the concept."""
        out = np.zeros((len(sentences), self.size), np.float32)
        for i, ids in enumerate(self.concept_ids(sentences)):
            out[i, ids] = 1.0
        return out

    def count_unique_concepts(self, caption: str) -> int:
        """Number of distinct vocabulary concepts in a caption (the ensemble's criterion 1)."""
        return int(len(self.concept_ids([caption])[0]))

    def to_json(self) -> dict:
        return {
            "format": "semantic_concepts",
            "options": dataclasses.asdict(self.options),
            "num_sentences": self.num_sentences,
            "concepts": [{"id": i, "word": w, "pos": p, "count": c}
                         for i, (w, p, c) in enumerate(zip(self.words, self.pos, self.counts))],
        }

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_json(path, self.to_json(), indent=1)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ConceptVocab:
        raw = read_json_file(path)
        if not isinstance(raw, dict) or "concepts" not in raw:
            raise ValueError(f"{path}: not a concept vocabulary (no 'concepts' field)")
        opts = dict(raw.get("options", {}))
        for k in ("pos_groups", "stop_words"):
            if k in opts:
                opts[k] = tuple(opts[k])
        concepts = raw["concepts"]
        for i, c in enumerate(concepts):
            if c.get("id") != i or not isinstance(c.get("word"), str):
                raise ValueError(f"{path}: field 'concepts'[{i}]: bad entry {c!r}")
        return cls([c["word"] for c in concepts], [c["pos"] for c in concepts],
                   [int(c["count"]) for c in concepts], ConceptOptions(**opts),
                   int(raw.get("num_sentences", 0)))


def build_concept_vocab(sentences: Iterable[str], options: ConceptOptions = ConceptOptions(),
                        workers: int = 1) -> ConceptVocab:
    """Counts the keys of all sentences and keeps the `top_n` most frequent.

    `workers` > 1 POS-tags in that many processes (the tagger is pure Python).
    """
    sentences = list(sentences)
    extractor = ConceptExtractor(options)
    counts: Counter[str] = Counter()
    pos_counts: dict[str, Counter[str]] = {}
    for items in extractor.extract(sentences, workers):
        for key, group in items:
            counts[key] += 1
            pos_counts.setdefault(key, Counter())[group] += 1
    ranked = sorted((k for k, n in counts.items() if n >= options.min_count),
                    key=lambda k: (-counts[k], k))[: options.top_n]
    pos = [min(pos_counts[k].items(), key=lambda kv: (-kv[1], kv[0]))[0] for k in ranked]
    vocab = ConceptVocab(ranked, pos, [counts[k] for k in ranked], options, len(sentences))
    vocab._extractor = extractor
    return vocab
