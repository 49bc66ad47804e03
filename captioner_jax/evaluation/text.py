"""Caption text preprocessing exactly as the official dense-captioning evaluator does it.

Official chain (densevid_eval `evaluate.py` + pycocoevalcap 1.2 `PTBTokenizer`):
  1. `remove_nonascii`: every character with code >= 128 becomes a space.
  2. Stanford PTBTokenizer (stanford-corenlp-3.4.1.jar bundled with pycocoevalcap) with
     `-preserveLines -lowerCase`, one sentence per line (`\\n` in a sentence -> space).
  3. Tokens in `PUNCTUATIONS` are dropped; the rest are joined by single spaces.

`ptb_tokenize` tokenizes a list of sentences as ONE document, `ptb_tokenize_documents` many
documents, in one Java invocation (the official script runs two per scorer per threshold).

Deliberate difference: besides `\\n`, we also replace `\\r`, `\\x0b`, `\\x0c` (and U+0085,
U+2028, U+2029, which `remove_nonascii` already removes in the official chain) by a space.
The Stanford lexer treats those as line breaks too, so in the official script such a sentence
produces extra output lines and every later caption of the batch is paired with the wrong
tokenization (a bug we do not reproduce). No ActivityNet annotation contains them.

The Stanford lexer looks past the end of a line: a sentence ending in a capital letter and a
period ("... with a capital T.") keeps the token "t." unless the NEXT non-blank line starts
with a capitalised word (then "t" and "."). So a line's tokens depend on the lines after it,
and the official numbers depend on the exact line sequence each tokenizer call sees: per
threshold, one line per (prediction, reference) pair, predictions and references in two
separate calls, a prediction matched to k segments repeated k times in a row (its copies can
get different tokens), videos in the order of a Python `set` (PYTHONHASHSEED-dependent).
`ptb_tokenize_documents` reproduces such sequences line for line: every line is tokenized in
its context, the line plus the following lines up to and including the first non-blank one,
and whether the document ends there. Each distinct context is tokenized once (most lines of
the per-threshold documents repeat), in one Java invocation (`-ioFileList`: the big document,
in pieces for parallel JVMs when large, plus one small file per distinct end-of-document
context, which needs a real end of file). Assumption, checked by tests against whole-document
tokenization and by the full val_1 + val_2 agreement below: the lexer does not look behind a
line's start nor past the first non-blank line after it.
Cost: a full val_1 + val_2 evaluation (265k pairs x 2 lines) tokenizes 155k distinct contexts
(203k lines with look-ahead lines) instead of 67k distinct sentences, about twice the Java
time of tokenizing each sentence once, still far less than the official 32 calls.
Checked: a generated 10-proposal submission over val_1 against val_1 + val_2, "latest",
`hash_seed=0`: METEOR per threshold equals `PYTHONHASHSEED=0 python evaluate2021.py` to 1e-15
(0.197553820950456, 0.25000055103115926, 0.282576105329487, 0.12230465935735771).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence

import pycocoevalcap  # a namespace package (no __init__.py): locate it by its search path

_PYCOCO_DIR = os.path.abspath(list(pycocoevalcap.__path__)[0])
STANFORD_CORENLP_JAR = os.path.join(_PYCOCO_DIR, "tokenizer", "stanford-corenlp-3.4.1.jar")
# Options of every JVM the evaluation starts (the PTB tokenizer here, the METEOR jars in
# meteor.py), before the official command's own. The throughput collector instead of the
# default G1: the jars are batch jobs that allocate much (METEOR's paraphrase table, its
# alignments) and G1's concurrent work competes with them for 2 cores. A collector changes no
# output (the tests compare every number with the official structure's); measured on a full
# val_1 + val_2 evaluation: README "Evaluator".
JVM_OPTIONS = ("-XX:+UseParallelGC",)

# pycocoevalcap 1.2 ptbtokenizer.PUNCTUATIONS. With -lowerCase the bracket tokens come out as
# "-lrb-"/"-rrb-", so the upper-case entries below never match (official quirk, kept).
PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-",
     ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)

_LINE_BREAKS = re.compile(r"[\n\r\x0b\x0c\x85\u2028\u2029]")
_NON_LETTERS = re.compile(r"[^a-zA-Z]")


def remove_nonascii(text: str) -> str:
    """Every character with code point >= 128 -> one space (length preserved)."""
    if text.isascii():
        return text
    return "".join(c if ord(c) < 128 else " " for c in text)


def _clean_tokens(line: str) -> str:
    return " ".join(w for w in line.rstrip().split(" ") if w not in PUNCTUATIONS)


# Parallel JVMs for big batches (each tokenizes ~1M tokens/s after a ~0.5 s start).
_MAX_JVMS = 4
_LINES_PER_JVM = 40000


def _run_ptb(documents: Sequence[Sequence[str]]) -> list[list[str]]:
    """Raw PTBTokenizer output lines of each document.

    Each document is its own input file (`-ioFileList`), so each has a real end of file; a
    big batch is split over up to `_MAX_JVMS` Java processes running at once (documents
    whole, balanced by line count; the same tokens either way: each file is lexed on its
    own). Returns, per document, >= 1 output line per input line.
    """
    total = sum(len(d) for d in documents)
    # At most half the cores: on a small shared machine parallel JVMs only compete.
    num_jvms = max(1, min(_MAX_JVMS, (os.cpu_count() or 1) // 2, total // _LINES_PER_JVM))
    groups: list[list[int]] = [[] for _ in range(num_jvms)]
    load = [0] * num_jvms
    for d in sorted(range(len(documents)), key=lambda d: -len(documents[d])):
        g = load.index(min(load))
        groups[g].append(d)
        load[g] += len(documents[d]) + 1
    folder = tempfile.mkdtemp(prefix="ptb_")
    try:
        procs = []
        for g, members in enumerate(groups):
            if not members:
                continue
            pairs = []
            for d in members:
                src, dst = os.path.join(folder, f"{d}.txt"), os.path.join(folder, f"{d}.tok")
                with open(src, "wb") as f:
                    f.write("\n".join(documents[d]).encode())
                pairs.append(f"{src} {dst}\n")
            file_list = os.path.join(folder, f"files{g}.txt")
            with open(file_list, "w") as f:
                f.write("".join(pairs))
            procs.append(subprocess.Popen(
                ["java", *JVM_OPTIONS, "-cp", STANFORD_CORENLP_JAR,
                 "edu.stanford.nlp.process.PTBTokenizer",
                 "-preserveLines", "-lowerCase", "-ioFileList", file_list],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        errors = [(p.returncode, err) for p in procs
                  for _, err in [p.communicate()] if p.returncode != 0]
        if errors:
            code, err = errors[0]
            raise RuntimeError(f"PTBTokenizer failed (exit {code}): {err.decode()[-2000:]}")
        out = []
        for d, lines in enumerate(documents):
            with open(os.path.join(folder, f"{d}.tok"), "rb") as f:
                got = f.read().decode().split("\n")
            if len(got) < len(lines):
                raise RuntimeError(
                    f"PTBTokenizer returned {len(got)} lines for {len(lines)} sentences")
            out.append(got)
        return out
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _is_blank(line: str) -> bool:
    """A line the lexer's look-ahead can read past (no printable non-space character)."""
    if line.isprintable():  # the usual case; ' ' is printable, other whitespace is not
        return not line.strip(" ")
    return all(c.isspace() or not c.isprintable() for c in line)


def ptb_tokenize_documents(
    documents: Sequence[Sequence[str]], *, known: Mapping[tuple, str] | None = None,
    collect: Sequence[int] = (),
) -> tuple[list[list[str]], dict[tuple, str]] | list[list[str]]:
    """Tokens of every line of every document, exactly as one pycocoevalcap
    `PTBTokenizer.tokenize` call per document returns them (line order matters: look-ahead).

    documents: each a sequence of sentences, one line each (`\n` etc. -> space, as in
    `ptb_tokenize`). Returns the same nesting with lower-case tokens joined by single spaces,
    punctuation tokens removed. One Java call in all; each distinct context (line, the
    following lines up to the first non-blank one, end of document or not) is tokenized once.

    A context's tokens are a function of the context alone (that is what the per-context
    de-duplication already relies on), so they can be remembered across calls:
    known: context -> tokens from earlier calls, a context being the tuple (its raw
      sentences..., end-of-document flag); the lines of documents listed in `collect` whose
      context is there are not tokenized again.
    collect: indices of documents whose contexts are returned for remembering; when given
      (or `known` is), the result is (tokens, {context: tokens} of those documents).
    """
    documents = list(documents)
    line_id: dict[str, int] = {}  # raw sentence -> id (keys below are tuples of ids)
    docs = [[line_id.setdefault(x, len(line_id)) for x in doc] for doc in documents]
    raw_lines = list(line_id)
    lines = [_LINE_BREAKS.sub(" ", x) for x in raw_lines]
    collect_set = set(collect)
    remembered = known is not None or bool(collect_set)
    known = known or {}
    cleaned: dict[tuple, str] = {}  # context -> tokens (each context cleaned once)
    string_keys: dict[tuple, tuple] = {}  # id context -> context_key, collected documents
    blank = [_is_blank(x) for x in lines]
    main: list[int] = []  # concatenated runs of needed lines and their look-ahead lines
    run_starts: list[int] = []  # where each run begins in `main` (safe places to split it)
    main_slot: dict[tuple, int] = {}  # context -> line of `main`
    tails: list[list[int]] = []  # end-of-document contexts, one file each
    tail_slot: dict[tuple, int] = {}
    keys_per_doc = []
    for d, doc in enumerate(docs):
        in_cache = d in collect_set
        n = len(doc)
        # next_stop[i]: first index >= i of a non-blank line (n if none).
        next_stop = [n] * (n + 1)
        for i in range(n - 1, -1, -1):
            next_stop[i] = next_stop[i + 1] if blank[doc[i]] else i
        keys = []
        pending_end = -1  # end (exclusive) of the run of `doc` last copied into `main`
        for i in range(n):
            stop = next_stop[i + 1]
            at_end = stop >= n - 1  # nothing after the look-ahead: a real end of file needed
            # Context: this line, the look-ahead lines, whether the document ends there.
            key = (*doc[i:stop + 1], at_end)
            keys.append(key)
            if in_cache and key not in string_keys:
                skey = (*(raw_lines[j] for j in doc[i:stop + 1]), at_end)
                string_keys[key] = skey
                if skey in known and key not in cleaned:
                    cleaned[key] = known[skey]
            if key in cleaned:
                continue
            if at_end:
                if key not in tail_slot:
                    tail_slot[key] = len(tails)
                    tails.append(doc[i:])
                continue
            if key in main_slot:
                continue
            if pending_end > i:  # the last copy (end of `main`) already holds line i
                main_slot[key] = len(main) - (pending_end - i)
                main.extend(doc[pending_end:stop + 1])
            else:
                run_starts.append(len(main))
                main_slot[key] = len(main)
                main.extend(doc[i:stop + 1])
            pending_end = max(pending_end, stop + 1)
        keys_per_doc.append(keys)
    if main or tails:
        _tokenize_contexts(lines, main, run_starts, main_slot, tails, tail_slot, cleaned)
    out = [[cleaned[k] for k in keys] for keys in keys_per_doc]
    if not remembered:
        return out
    return out, {skey: cleaned[key] for key, skey in string_keys.items()}


def _tokenize_contexts(lines, main, run_starts, main_slot, tails, tail_slot, cleaned) -> None:
    """Runs the JVM(s) on the collected contexts and stores their tokens in `cleaned`."""
    # `main` in pieces cut at run starts (a run holds its lines' look-ahead), so that big
    # batches can go to parallel JVMs.
    cuts = [0]
    for start in run_starts:
        if start - cuts[-1] >= _LINES_PER_JVM:
            cuts.append(start)
    cuts.append(len(main))
    pieces = [main[a:b] for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
    raw = _run_ptb([[lines[j] for j in f] for f in pieces + tails])
    raw_main = [line for piece, out in zip(pieces, raw) for line in out[:len(piece)]]
    raw_tails = raw[len(pieces):]
    for k, slot in main_slot.items():
        cleaned[k] = _clean_tokens(raw_main[slot])
    for k, slot in tail_slot.items():
        cleaned[k] = _clean_tokens(raw_tails[slot][0])


def ptb_tokenize(sentences: Sequence[str]) -> list[str]:
    """PTB-tokenizes `sentences` as ONE document (one pycocoevalcap call), one Java process.

    Output strings are lower-case tokens joined by single spaces, punctuation tokens removed,
    exactly what pycocoevalcap's `PTBTokenizer.tokenize` returns for the same captions in
    the same order (the caller applies `remove_nonascii` first, as the official evaluator
    does); a repeated sentence can get different tokens depending on the next line.
    """
    sentences = list(sentences)
    if not sentences:
        return []
    return ptb_tokenize_documents([sentences])[0]


def preprocess_captions(sentences: Sequence[str]) -> list[str]:
    """`remove_nonascii` then `ptb_tokenize` (one Java call): the official caption chain."""
    return ptb_tokenize([remove_nonascii(s) for s in sentences])


def normalize_paragraph(text: str) -> str:
    """PDVC `para_evaluate.parse_sent`: non-letters -> space, lower-case, single spaces."""
    return " ".join(_NON_LETTERS.sub(" ", text).strip().lower().split())
