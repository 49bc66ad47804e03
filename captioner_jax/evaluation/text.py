"""Caption text preprocessing exactly as the official dense-captioning evaluator does it.

Official chain (densevid_eval `evaluate.py` + pycocoevalcap 1.2 `PTBTokenizer`):
  1. `remove_nonascii`: every character with code >= 128 becomes a space.
  2. Stanford PTBTokenizer (stanford-corenlp-3.4.1.jar bundled with pycocoevalcap) with
     `-preserveLines -lowerCase`, one sentence per line (`\\n` in a sentence -> space).
  3. Tokens in `PUNCTUATIONS` are dropped; the rest are joined by single spaces.

`ptb_tokenize` runs ONE Java process for a whole list of sentences (the official script runs
two per scorer per threshold); each distinct sentence is tokenized once.

Deliberate difference: besides `\\n`, we also replace `\\r`, `\\x0b` and `\\x0c` by a space.
The Stanford lexer treats those as line breaks too, so in the official script such a sentence
produces extra output lines and every later caption of the batch is paired with the wrong
tokenization (a bug we do not reproduce). No ActivityNet annotation contains them.

Official quirk that makes the official numbers themselves vary between runs: the Stanford
lexer looks past the end of a line, so a sentence ending in a capital letter and a period
("... with a capital T.") keeps the token "t." unless the NEXT line starts with a capitalised
word (then "t" and "."). The official script tokenizes each threshold's captions in one batch
in the order of a Python `set` of video ids, which changes with PYTHONHASHSEED; we tokenize
the distinct sentences in first-appearance order (sorted video ids), deterministic and equal
to one of the official runs. Measured on all of val_1 + val_2 with a generated submission:
the official METEOR at tIoU 0.5 is 0.237099608 with PYTHONHASHSEED=1 and 0.237099512 with
PYTHONHASHSEED=2 (one video differs); ours is 0.237099512.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Sequence

import pycocoevalcap  # a namespace package (no __init__.py): locate it by its search path

_PYCOCO_DIR = os.path.abspath(list(pycocoevalcap.__path__)[0])
STANFORD_CORENLP_JAR = os.path.join(_PYCOCO_DIR, "tokenizer", "stanford-corenlp-3.4.1.jar")

# pycocoevalcap 1.2 ptbtokenizer.PUNCTUATIONS. With -lowerCase the bracket tokens come out as
# "-lrb-"/"-rrb-", so the upper-case entries below never match (official quirk, kept).
PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-",
     ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)

_LINE_BREAKS = re.compile(r"[\n\r\x0b\x0c]")
_NON_LETTERS = re.compile(r"[^a-zA-Z]")


def remove_nonascii(text: str) -> str:
    """Every character with code point >= 128 -> one space (length preserved)."""
    if text.isascii():
        return text
    return "".join(c if ord(c) < 128 else " " for c in text)


def ptb_tokenize(sentences: Sequence[str]) -> list[str]:
    """PTB-tokenizes `sentences` with one Java call; returns one token string per input.

    Output strings are lower-case tokens joined by single spaces, punctuation tokens removed,
    exactly what pycocoevalcap's `PTBTokenizer.tokenize` returns for the same captions
    (the caller applies `remove_nonascii` first, as the official evaluator does).
    """
    sentences = list(sentences)
    if not sentences:
        return []
    unique = list(dict.fromkeys(sentences))
    lines = [_LINE_BREAKS.sub(" ", s) for s in unique]
    fd, path = tempfile.mkstemp(prefix="ptb_", suffix=".txt")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write("\n".join(lines).encode())
        proc = subprocess.run(
            ["java", "-cp", STANFORD_CORENLP_JAR, "edu.stanford.nlp.process.PTBTokenizer",
             "-preserveLines", "-lowerCase", path],
            capture_output=True, check=False,
        )
    finally:
        os.remove(path)
    if proc.returncode != 0:
        raise RuntimeError(
            f"PTBTokenizer failed (exit {proc.returncode}): {proc.stderr.decode()[-2000:]}"
        )
    out_lines = proc.stdout.decode().split("\n")
    if len(out_lines) < len(unique):
        raise RuntimeError(
            f"PTBTokenizer returned {len(out_lines)} lines for {len(unique)} sentences"
        )
    tokenized = {
        s: " ".join(w for w in line.rstrip().split(" ") if w not in PUNCTUATIONS)
        for s, line in zip(unique, out_lines)
    }
    return [tokenized[s] for s in sentences]


def preprocess_captions(sentences: Sequence[str]) -> list[str]:
    """`remove_nonascii` then `ptb_tokenize` (one Java call): the official caption chain."""
    return ptb_tokenize([remove_nonascii(s) for s in sentences])


def normalize_paragraph(text: str) -> str:
    """PDVC `para_evaluate.parse_sent`: non-letters -> space, lower-case, single spaces."""
    return " ".join(_NON_LETTERS.sub(" ", text).strip().lower().split())
