"""The PTB tokenizer's look-ahead across lines: the evaluator reproduces the official line
sequences (issue 17, point 1).

Golden numbers: the official scripts themselves, run from a scratch copy outside the project
(PDVC `densevid_eval3/evaluate2018.py` = densevid_eval deba7d7, with `-v`; fujiso/SODA
9cb3e2c driven like PDVC's `eval_soda.py`: one SODA run per reference file, [P, R, F1]
averaged), pip pycocoevalcap 1.2, Java 17, Python 3.11, on the inputs below written to JSON
files, e.g. `PYTHONHASHSEED=0 python evaluate2018.py -s sub.json -r ref1.json ref2.json -v`.
Every metric agreed to ~1e-16 after the fix; before it METEOR was 33.6604 on the minimal input.
"""
import json
import random

import pytest

from captioner_jax.evaluation import evaluate_submission
from captioner_jax.evaluation.dense_captioning import official_video_order, soda_video_order
from captioner_jax.evaluation.text import ptb_tokenize, ptb_tokenize_documents

METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "Recall",
           "Precision")


def _sub(results):
    return {"version": "VERSION 1.0", "external_data": {}, "results": results}


# Issue 17's minimal input: one prediction matched to both segments at tIoU 0.3, so its line
# appears twice; the first copy is followed by "The man ..." (-> "t" "."), the second by the
# end of the document (-> "t.").
MINIMAL_REF = {"v_ctx": {"duration": 20.0, "timestamps": [[0, 10], [10, 20]], "sentences": [
    "A man writes a letter on a board.", " The man writes a capital T on the board."]}}
MINIMAL_SUB = _sub({"v_ctx": [{"sentence": "The man writes a capital T.", "timestamp": [0, 20]}]})
# evaluate2018.py --tious 0.3 -v (any PYTHONHASHSEED: one video).
MINIMAL_GOLDEN = {
    "Bleu_1": 0.43949375339371377, "Bleu_2": 0.416940383438673, "Bleu_3": 0.38552625921959466,
    "Bleu_4": 0.3349817530512375, "METEOR": 0.3380849535655427, "ROUGE_L": 0.5306340673949482,
    "CIDEr": 2.3400732907263433, "Recall": 1.0, "Precision": 1.0,
}

# Several segments per prediction over two reference files, capital-letter endings, an empty
# sentence, a duplicate, an unmatched proposal (garbage pair), two videos (their order is the
# official `set` order, which changes with PYTHONHASHSEED).
MULTI_REFS = [
    {"v_multi": {"duration": 60.0, "timestamps": [[0, 12], [10, 25], [20, 40], [38, 60]],
                 "sentences": ["A woman paints a large letter A.", "She then adds a capital B.",
                               "the crowd claps for the letter C.",
                               "Then she signs her name with a big D."]},
     "v_other": {"duration": 30.0, "timestamps": [[0, 15], [15, 30]],
                 "sentences": ["A boy holds a sign with an X.", "The boy drops the sign."]}},
    {"v_multi": {"duration": 60.0, "timestamps": [[0, 30], [30, 60]],
                 "sentences": ["The woman paints letters A and B.",
                               "She paints a capital C and a D."]}},
]
MULTI_SUB = _sub({
    "v_multi": [
        {"sentence": "A woman paints a capital A.", "timestamp": [0, 30]},
        {"sentence": "She adds a B.", "timestamp": [8, 26]},
        {"sentence": "", "timestamp": [12, 30]},
        {"sentence": "The crowd claps for a capital C.", "timestamp": [18, 60]},
        {"sentence": "She signs with a D.", "timestamp": [35, 60]},
        {"sentence": "She signs with a D.", "timestamp": [70, 80]},
        {"sentence": "Then a big E.", "timestamp": [0, 60]}],
    "v_other": [
        {"sentence": "A boy holds an X.", "timestamp": [0, 30]},
        {"sentence": "The boy drops it.", "timestamp": [14, 30]}]})
_COMMON = {"Bleu_1": 0.3111881440098989, "Bleu_2": 0.24949441792926538,
           "Bleu_3": 0.1823133412119386, "Bleu_4": 0.010878749961419801,
           "ROUGE_L": 0.30854831867081944, "Recall": 0.75, "Precision": 0.5803571428571428}
# evaluate2018.py (default tIoUs) -v and the SODA_c driver, per PYTHONHASHSEED. Seed 0 visits
# v_other first, seed 1 v_multi first (= sorted ids, our default); seeds 2 and 3 gave seed
# 0's numbers.
MULTI_GOLDEN = {
    0: {**_COMMON, "METEOR": 0.1504074015360358, "CIDEr": 1.3994657633406162,
        "SODA_c": [0.14556751024762046, 0.24924859432127908, 0.17231855247732425]},
    1: {**_COMMON, "METEOR": 0.1502031177770783, "CIDEr": 1.4002325869759948,
        "SODA_c": [0.1457413874198572, 0.24955287937269338, 0.17253985069653466]},
}


def _check(out, golden):
    for key in METRICS:
        if key in golden:
            assert out[key] == pytest.approx(100 * golden[key], abs=1e-9), key
    if "SODA_c" in golden:
        got = [out["SODA_c_precision"], out["SODA_c_recall"], out["SODA_c"]]
        assert got == pytest.approx([100 * v for v in golden["SODA_c"]], abs=1e-9)


def test_minimal_input_equals_official():
    out = evaluate_submission(MINIMAL_SUB, MINIMAL_REF, tious=(0.3,))
    _check(out, MINIMAL_GOLDEN)
    assert out["METEOR"] == pytest.approx(33.8085, abs=5e-5)  # the project had 33.6604


@pytest.mark.parametrize("hash_seed", [None, 0, 1])
def test_multi_segment_equals_official_run_with_that_hash_seed(hash_seed):
    out = evaluate_submission(MULTI_SUB, MULTI_REFS, soda=True, hash_seed=hash_seed)
    _check(out, MULTI_GOLDEN[1 if hash_seed is None else hash_seed])


def test_video_orders_follow_the_python_set_order():
    keys = [list(MULTI_REFS[0]), list(MULTI_REFS[1])]
    assert official_video_order(keys, None) == ["v_multi", "v_other"]
    assert official_video_order(keys, 0) == ["v_other", "v_multi"]
    assert official_video_order(keys, 1) == ["v_multi", "v_other"]
    assert soda_video_order(keys[0], list(MULTI_SUB["results"]), 0) == ["v_other", "v_multi"]
    with pytest.raises(ValueError, match="PYTHONHASHSEED"):
        official_video_order(keys, -1)


def _whole_document(lines):
    """pycocoevalcap's own tokenizer on the whole document: one Java call, as officially."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    out = PTBTokenizer().tokenize({i: [{"caption": s}] for i, s in enumerate(lines)})
    return [out[i][0] for i in range(len(lines))]


@pytest.fixture(scope="module")
def stress_docs(shared_data):
    """Documents built to stress the context rule: capital-letter endings followed by
    capitalised / lower-case / blank / empty lines, runs of repeats, real captions,
    documents ending in blank lines."""
    val = json.loads((shared_data / "activitynet_captions" / "val_1.json").read_text())
    real = [s for v in sorted(val)[:30] for s in val[v]["sentences"]]
    tricky = ["The man writes a capital T.", "He draws a big X.", "", "   ", "the end.",
              "The End.", "abc123!@#", "Mr. Smith waves.", "U.S. flag is raised.", "a",
              "He says \"Hi.\"", "It is 5 p.m.", "No. 5 wins."]
    rng = random.Random(0)
    docs = []
    for n in (1, 2, 7, 60, 200):
        doc = []
        while len(doc) < n:
            s = rng.choice(tricky) if rng.random() < 0.6 else rng.choice(real)
            doc += [s] * rng.choice([1, 1, 2, 3])
        docs.append(doc[:n])
    docs.append(["He wrote T.", "", " ", "The end T.", "x T.", "x T.", "the", "x T.", "", ""])
    return docs


def test_documents_equal_whole_document_tokenization(stress_docs):
    """The context rule (line + following lines up to the first non-blank one + end of
    document or not) against tokenizing each whole document as pycocoevalcap does."""
    docs = stress_docs
    got = ptb_tokenize_documents(docs)
    for doc, tokens in zip(docs, got):
        assert tokens == _whole_document(doc)
    # The same sentence gets both tokenizations inside one document.
    assert got[-1][0] == "he wrote t" and got[-1][3] == "the end t."
    assert ptb_tokenize(["The man writes a capital T."] * 2) == [
        "the man writes a capital t", "the man writes a capital t."]
    assert ptb_tokenize_documents([]) == [] and ptb_tokenize_documents([[]]) == [[]]


def test_batch_split_over_parallel_jvms_gives_the_same_tokens(stress_docs, monkeypatch):
    from captioner_jax.evaluation import text

    want = ptb_tokenize_documents(stress_docs)
    jvms = []
    real_popen = text.subprocess.Popen

    def spy(*args, **kwargs):
        jvms.append(args[0])
        return real_popen(*args, **kwargs)

    monkeypatch.setattr(text, "_LINES_PER_JVM", 20)
    monkeypatch.setattr(text.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(text.subprocess, "Popen", spy)
    assert ptb_tokenize_documents(stress_docs) == want
    assert len(jvms) == 4  # the main document in pieces, over 4 Java processes
