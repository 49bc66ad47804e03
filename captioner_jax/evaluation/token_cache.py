"""On-disk cache of the PTB tokens of reference lines, keyed by the references' content.

The official protocol tokenizes, per threshold, one document holding the reference of every
(prediction, reference) pair. References rarely change between evaluations (val_1 + val_2
for every checkpoint), so the tokens of their line contexts are remembered across
evaluations and processes: `ptb_tokenize_documents(known=..., collect=...)` takes the
remembered contexts and returns the new ones.

Exactness: an entry maps a whole context — the line's raw sentence, the look-ahead lines up
to the first non-blank one, and whether the document ends there — to the tokens the jar gave
it; that is everything the tokenizer's output for the line depends on (the per-context
de-duplication of `text.ptb_tokenize_documents` relies on the same fact, and tests check it
against whole-document tokenization). A hit therefore returns the very string a fresh JVM
run would, whatever the submission; the cache only decides which contexts skip the JVM.

Layout: one JSON file per (reference content, tokenizer version) under
`cache_dir/ptb_references/`, default `$XDG_CACHE_HOME/sa_tsp_dvc` (else `~/.cache/sa_tsp_dvc`):
  {"format": 1, "tokenizer": TOKENIZER_VERSION..., "references": sha256, "checksum": sha256
   of the entries' JSON, "entries": [[[sentence, ...], at_end, tokens], ...]}
written atomically (path layer, so `gs://` works). A missing, unreadable, corrupt (bad JSON,
wrong checksum, wrong shape) or other-version file is ignored with a warning and rewritten:
the evaluation recomputes, it never fails because of the cache.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence

from captioner_jax.evaluation import text
from data_prep.infra import paths
from data_prep.infra.atomic_files import atomic_write_text

log = logging.getLogger(__name__)

FORMAT = 1
# A file never grows past this many contexts (about 100 bytes each); beyond it only the
# current evaluation's contexts are kept.
MAX_ENTRIES = 2_000_000


@functools.cache
def tokenizer_version() -> str:
    """What the tokens depend on besides the text: the jar's bytes, flags, dropped tokens."""
    h = hashlib.sha256()
    with open(text.STANFORD_CORENLP_JAR, "rb") as f:
        h.update(f.read())
    h.update(json.dumps(["-preserveLines", "-lowerCase", sorted(text.PUNCTUATIONS),
                         text._LINE_BREAKS.pattern, FORMAT]).encode())
    return h.hexdigest()[:32]


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "sa_tsp_dvc")


def references_digest(sentence_lists: Sequence[Mapping[str, Sequence[str]]]) -> str:
    """sha256 of the reference sentences, per file, per video (sorted ids), in file order."""
    h = hashlib.sha256()
    for f in sentence_lists:
        h.update(json.dumps([[v, list(f[v])] for v in sorted(f)], ensure_ascii=False).encode())
        h.update(b"\x00")
    return h.hexdigest()


def cache_path(cache_dir: str, digest: str) -> str:
    return paths.join(cache_dir, "ptb_references", f"{digest[:40]}-{tokenizer_version()[:12]}.json")


def _checksum(entries: list) -> str:
    return hashlib.sha256(json.dumps(entries, ensure_ascii=False).encode()).hexdigest()


def load(cache_dir: str, digest: str) -> dict[tuple, str]:
    """Remembered contexts of these references ({} when none or unusable, with a warning)."""
    path = cache_path(cache_dir, digest)
    try:
        if not paths.exists(path):
            return {}
        data = json.loads(paths.read_text(path))
        entries = data["entries"]
        if (data.get("format") != FORMAT or data.get("tokenizer") != tokenizer_version()
                or data.get("references") != digest):
            raise ValueError("written for other references or another tokenizer")
        if data.get("checksum") != _checksum(entries):
            raise ValueError("checksum mismatch")
        known = {}
        for lines, at_end, tokens in entries:
            if not (isinstance(lines, list) and lines and isinstance(at_end, bool)
                    and isinstance(tokens, str) and all(isinstance(x, str) for x in lines)):
                raise ValueError("malformed entry")
            known[(*lines, at_end)] = tokens
        return known
    except Exception as e:  # noqa: BLE001 - any unusable cache means: recompute
        log.warning("ignoring the reference-token cache %s (%s: %s); recomputing",
                    path, type(e).__name__, e)
        return {}


def store(cache_dir: str, digest: str, known: Mapping[tuple, str],
          new: Mapping[tuple, str]) -> None:
    """Writes `known` plus `new` (atomically) when `new` adds contexts; errors only warn."""
    added = {k: v for k, v in new.items() if k not in known}
    if not added:
        return
    merged = {**known, **added} if len(known) + len(added) <= MAX_ENTRIES else dict(new)
    entries = [[list(k[:-1]), k[-1], v] for k, v in merged.items()]
    path = cache_path(cache_dir, digest)
    try:
        atomic_write_text(path, json.dumps({
            "format": FORMAT, "tokenizer": tokenizer_version(), "references": digest,
            "checksum": _checksum(entries), "entries": entries}, ensure_ascii=False))
    except Exception as e:  # noqa: BLE001 - a read-only cache must not fail the evaluation
        log.warning("could not write the reference-token cache %s: %s", path, e)
