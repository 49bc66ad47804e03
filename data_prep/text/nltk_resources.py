"""Access to the NLTK resources the text layer needs, with an error that says how to install.

Resources: the averaged perceptron tagger (`averaged_perceptron_tagger_eng`, NLTK >= 3.9) for
POS tags and WordNet (`wordnet`) for lemmatisation. NLTK searches the folders in `NLTK_DATA`
and its defaults; this project ships them in ../shared/nltk_data.
"""
from __future__ import annotations

_RESOURCES = {
    "tagger": ("taggers/averaged_perceptron_tagger_eng/", "averaged_perceptron_tagger_eng"),
    "wordnet": ("corpora/wordnet.zip/wordnet/", "wordnet"),
}


class MissingNltkDataError(RuntimeError):
    """An NLTK resource is not installed."""


def require(*names: str) -> None:
    """Raises MissingNltkDataError naming the missing resources and how to install them."""
    import nltk

    missing = []
    for name in names:
        path, package = _RESOURCES[name]
        try:
            nltk.data.find(path)
        except LookupError:
            if name == "wordnet":  # an unzipped copy is fine too
                try:
                    nltk.data.find("corpora/wordnet/")
                    continue
                except LookupError:
                    pass
            missing.append(package)
    if missing:
        raise MissingNltkDataError(
            f"NLTK data not found: {', '.join(missing)} (searched {list(nltk.data.path)}). "
            f"Install it with `python -m nltk.downloader {' '.join(missing)}`, or point the "
            "NLTK_DATA environment variable at a folder that has it (in this project: "
            "NLTK_DATA=../shared/nltk_data)."
        )


def _tag_chunk(token_lists: list[list[str]]) -> list[list[tuple[str, str]]]:
    import nltk

    return nltk.pos_tag_sents(token_lists, lang="eng")


def pos_tag_sents(token_lists: list[list[str]], workers: int = 1,
                  ) -> list[list[tuple[str, str]]]:
    """Penn Treebank tags of tokenised sentences (NLTK's averaged perceptron, batched).

    With `workers` > 1 and enough sentences, contiguous chunks are tagged in worker processes
    (spawned: the caller may hold threads, e.g. JAX's); the result is identical.
    """
    require("tagger")
    if workers <= 1 or len(token_lists) < 4000:
        return _tag_chunk(token_lists)
    import concurrent.futures as cf
    import multiprocessing

    n = len(token_lists)
    bounds = [n * i // workers for i in range(workers + 1)]
    chunks = [token_lists[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        return [tags for part in pool.map(_tag_chunk, chunks) for tags in part]


class Lemmatizer:
    """WordNet lemmas, choosing among candidates by WordNet's sense-tagged frequency.

    NLTK's `WordNetLemmatizer` returns the *shortest* candidate (`riding` -> `rid`); we pick
    the candidate whose lemmas have the highest total count in WordNet's cntlist
    (`riding` -> `ride`), ties broken by NLTK's rule (shortest), then candidate order.
    Results are cached per (word, pos).
    """

    def __init__(self):
        require("wordnet")
        from nltk.corpus import wordnet

        self._wn = wordnet
        self._cache: dict[tuple[str, str], str] = {}
        self._freq: dict[tuple[str, str], int] = {}

    def __call__(self, word: str, pos: str) -> str:
        """`pos` is a WordNet POS: "n", "v", "a" or "r"."""
        key = (word, pos)
        if key not in self._cache:
            self._cache[key] = self._choose(word, pos)
        return self._cache[key]

    def _choose(self, word: str, pos: str) -> str:
        candidates = self._wn._morphy(word, pos)
        if not candidates:
            return word
        if len(candidates) == 1:
            return candidates[0]
        scores = [(-self._frequency(c, pos), len(c), i) for i, c in enumerate(candidates)]
        return candidates[min(scores)[2]]

    def _frequency(self, lemma: str, pos: str) -> int:
        key = (lemma, pos)
        if key not in self._freq:
            self._freq[key] = sum(lm.count() for lm in self._wn.lemmas(lemma, pos))
        return self._freq[key]
