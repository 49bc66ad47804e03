"""Official ActivityNet dense-captioning evaluation (densevid_eval "2018" / latest, SODA_c,
paragraph metrics), fast: one PTB tokenization, one METEOR JVM, numpy-vectorized scorers.

Public API:
  evaluate_submission(submission, references, *, version, tious, max_proposals, soda,
                      para_references, lenient, official_inputs, hash_seed) -> dict
  CiderD: corpus CIDEr-D with precomputed document frequencies (SCST rewards).
  MeteorProcess / get_meteor(): one long-lived METEOR process (with a JDK: one JVM scoring on
    a thread per core, `java/MeteorThreads.java`); `.pair_scores(hyps, refs)`.
  MeteorPool / get_meteor_pool(n): n jars serving as one (pairs split between them).
  ptb_tokenize(sentences) -> list[str]: pycocoevalcap's PTB tokenization of one document
    (one line per sentence; the lexer looks ahead across lines).
  ptb_tokenize_documents(documents) -> list[list[str]]: the same for many documents, each
    distinct line context tokenized once, one Java invocation.
"""
from captioner_jax.evaluation.api import evaluate_submission
from captioner_jax.evaluation.cider import CiderD
from captioner_jax.evaluation.meteor import MeteorPool, MeteorProcess, get_meteor, get_meteor_pool
from captioner_jax.evaluation.submission import SubmissionError
from captioner_jax.evaluation.text import ptb_tokenize, ptb_tokenize_documents, remove_nonascii

__all__ = [
    "CiderD",
    "MeteorPool",
    "MeteorProcess",
    "SubmissionError",
    "evaluate_submission",
    "get_meteor",
    "get_meteor_pool",
    "ptb_tokenize",
    "ptb_tokenize_documents",
    "remove_nonascii",
]
