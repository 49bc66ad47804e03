"""The evaluator's speed mechanisms give the numbers they replace (issue 15, point 4).

* the on-disk reference-token cache: a hit equals a miss; a corrupt, foreign or unreadable
  cache file is ignored and rewritten;
* `--video-order`: an explicit order equals the `hash_seed` order it spells out;
* METEOR pairs shared by a pool of jars: the same statistics lines, in pair order, however
  they are chunked and whatever the jar was asked before (one JVM on several threads:
  tests/test_meteor_threads.py);
* METEOR pairs scored once for all thresholds: each threshold equals its own evaluation.
Small inputs (the look-ahead test's multi-segment, two-file case) and one shared jar.
"""
import json
import logging

import numpy as np
import pytest

from captioner_jax.evaluation import evaluate_submission, get_meteor, ptb_tokenize, token_cache
from captioner_jax.evaluation import text as text_module
from captioner_jax.evaluation.dense_captioning import official_video_order
from captioner_jax.evaluation.meteor import MeteorPool

METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "Recall",
           "Precision")


def _sub(results):
    return {"version": "VERSION 1.0", "external_data": {}, "results": results}


# Several segments per prediction over two files, capital-letter endings (the look-ahead
# matters), an empty sentence, a duplicate, an unmatched proposal (garbage pair), two videos.
REFS = [
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
SUB = _sub({
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


def _numbers(result):
    return {"avg": {m: result[m] for m in METRICS}, "per_tiou": result["per_tiou"]}


@pytest.fixture(scope="module")
def uncached():
    return evaluate_submission(SUB, REFS, reference_cache=False)


def _count_jvm_lines(monkeypatch):
    sent = []
    run = text_module._run_ptb

    def counting(documents):
        sent.append(sum(len(d) for d in documents))
        return run(documents)

    monkeypatch.setattr(text_module, "_run_ptb", counting)
    return sent


def test_reference_token_cache_hit_equals_miss(uncached, tmp_path, monkeypatch):
    sent = _count_jvm_lines(monkeypatch)
    miss = evaluate_submission(SUB, REFS, cache_dir=str(tmp_path))
    files = list((tmp_path / "ptb_references").iterdir())
    assert len(files) == 1
    hit = evaluate_submission(SUB, REFS, cache_dir=str(tmp_path))
    assert _numbers(miss) == _numbers(uncached) == _numbers(hit)
    # The hit sent only hypothesis lines to the JVM; the file is unchanged (nothing new).
    assert sent[1] < sent[0]
    assert list((tmp_path / "ptb_references").iterdir()) == files
    # Another submission over the same references reuses the file and adds its contexts.
    other = _sub({"v_multi": SUB["results"]["v_multi"][::-1]})
    got = evaluate_submission(other, REFS, cache_dir=str(tmp_path))
    assert _numbers(got) == _numbers(evaluate_submission(other, REFS, reference_cache=False))


@pytest.mark.parametrize("damage", ["truncated", "tokens_edited", "other_tokenizer",
                                    "not_json_object"])
def test_corrupt_or_foreign_cache_recomputes(uncached, tmp_path, damage, caplog):
    evaluate_submission(SUB, REFS, cache_dir=str(tmp_path))
    (path,) = (tmp_path / "ptb_references").iterdir()
    raw = path.read_text()
    data = json.loads(raw)
    if damage == "truncated":
        path.write_text(raw[:len(raw) // 2])
    elif damage == "tokens_edited":  # valid JSON, wrong tokens: the checksum catches it
        data["entries"][0][2] = "poisoned tokens"
        path.write_text(json.dumps(data))
    elif damage == "other_tokenizer":
        data["tokenizer"] = "0" * 32
        data["checksum"] = token_cache._checksum(data["entries"])
        path.write_text(json.dumps(data))
    else:
        path.write_text("[1, 2, 3]")
    with caplog.at_level(logging.WARNING, logger="captioner_jax.evaluation.token_cache"):
        again = evaluate_submission(SUB, REFS, cache_dir=str(tmp_path))
    assert _numbers(again) == _numbers(uncached)
    assert "ignoring the reference-token cache" in caplog.text
    assert json.loads(path.read_text())["entries"]  # rewritten, usable again
    assert token_cache.load(str(tmp_path), json.loads(path.read_text())["references"])


def test_cached_context_tokens_equal_fresh_ones():
    """`ptb_tokenize_documents(known=...)` returns the remembered tokens where it has them
    and the JVM's elsewhere; what it remembers equals a fresh tokenization."""
    docs = [["A man writes a capital T.", "The man smiles.", "A capital T."],
            ["A capital T.", "", "The end T.", "we see it"]]
    fresh, contexts = text_module.ptb_tokenize_documents(docs, collect=[0, 1])
    assert fresh == text_module.ptb_tokenize_documents(docs)
    again, _ = text_module.ptb_tokenize_documents(docs, known=contexts, collect=[1])
    assert again == fresh
    assert fresh[0][0] == ptb_tokenize(docs[0])[0] == "a man writes a capital t"


def test_explicit_video_order_equals_hash_seed_order(tmp_path):
    order = official_video_order([list(f) for f in REFS], 0)
    by_seed = evaluate_submission(SUB, REFS, hash_seed=0, reference_cache=False)
    by_order = evaluate_submission(SUB, REFS, video_order=order, reference_cache=False)
    assert _numbers(by_order) == _numbers(by_seed)
    with pytest.raises(ValueError, match="every reference video exactly once"):
        evaluate_submission(SUB, REFS, video_order=["v_multi"], reference_cache=False)


def test_meteor_pool_gives_the_lines_of_one_jar():
    hyps = ["a woman paints a capital a", "she adds a b", "", "the crowd claps",
            "she signs with a d", "then a big e", "a boy holds an x"] * 5
    refs = [["a woman paints a large letter a"], ["she then adds a capital b"], ["abc123!@#"],
            ["the crowd claps for the letter c"], ["then she signs her name with a big d"],
            ["she paints a capital c and a d"], ["a boy holds a sign with an x"]] * 5
    hyps = [h + " " + str(i // 7) for i, h in enumerate(hyps)]  # 35 distinct pairs
    jar = get_meteor()
    want = jar.stats(hyps, refs)
    # Chunks of 4 served by two workers (here both the shared jar: the answer of a line does
    # not depend on what the jar was asked before, checked by the reversed order too).
    pool = MeteorPool([jar, jar], chunk=4)
    assert pool.stats(hyps, refs) == want
    assert jar.stats(hyps[::-1], refs[::-1]) == want[::-1]
    groups = [[0, 1, 2], [5], list(range(35))]
    np.testing.assert_array_equal(pool.aggregates(want, groups), jar.aggregates(want, groups))


def test_pairs_shared_across_thresholds_equal_each_threshold_alone(uncached):
    """METEOR statistics are asked once per distinct pair for all thresholds; each
    threshold's METEOR equals an evaluation of that threshold alone, bit for bit."""
    for t, row in uncached["per_tiou"].items():
        alone = evaluate_submission(SUB, REFS, tious=(float(t),), reference_cache=False)
        assert alone["per_tiou"][float(t)]["METEOR"] == row["METEOR"]
        for m in METRICS:
            assert alone["per_tiou"][float(t)][m] == pytest.approx(row[m], rel=1e-12, abs=1e-12)


def test_python2_split_keeps_a_no_break_space_token_whole():
    """The PTB jar joins a phone number into one token with U+00A0 inside; the Python 2
    original's BLEU splits bytes on ASCII whitespace only (one token), the Python 3 ports
    (our default, pinned by the golden tests) on U+00A0 too (three tokens)."""
    from captioner_jax.evaluation.dense_captioning import python2_split_text

    assert ptb_tokenize(["Call 925 606 0946 now."]) == ["call 925\xa0606\xa00946 now"]
    assert len(python2_split_text("call 925\xa0606\xa00946 now").split()) == 3
    assert python2_split_text("a b\tc") == "a b\tc"
    refs = {"v": {"timestamps": [[0, 10]], "sentences": ["Call 925 606 0946 later."]}}
    sub = _sub({"v": [{"sentence": "Call 925 606 0946 now.", "timestamp": [0, 10]}]})
    py3 = evaluate_submission(sub, refs, tious=(0.5,), reference_cache=False)
    py2 = evaluate_submission(sub, refs, tious=(0.5,), reference_cache=False,
                              python2_split=True)
    assert py3["Bleu_1"] == pytest.approx(100 * 4 / 5, rel=1e-8)  # call 925 606 0946 | now
    assert py2["Bleu_1"] == pytest.approx(100 * 2 / 3, rel=1e-8)  # call 925_606_0946 | now
    assert py2["METEOR"] == py3["METEOR"] and py2["ROUGE_L"] == py3["ROUGE_L"]


def test_prestart_evaluator_starts_the_shared_jar_on_the_evaluating_process(monkeypatch):
    """Trainers start the METEOR jar with the stage so that it loads while they compile: the
    first evaluation then finds the shared jar already running."""
    from captioner_jax import inference
    from captioner_jax.evaluation import meteor as meteor_module
    from data_prep.infra import distributed

    started = []
    monkeypatch.setattr(meteor_module, "get_meteor", lambda: started.append(1))
    assert not inference.prestart_evaluator([])  # nothing to evaluate against
    assert not inference.prestart_evaluator(["", None])
    with monkeypatch.context() as m:  # only process 0 evaluates
        m.setattr(distributed, "is_main_process", lambda: False)
        assert not inference.prestart_evaluator(["val_1.json"])
    assert not started
    assert inference.prestart_evaluator(["val_1.json"]) and started == [1]
    monkeypatch.undo()
    # The real one: a running jar, the one every later evaluation of this process uses.
    assert inference.prestart_evaluator(["val_1.json"])
    jar = get_meteor()
    assert jar._proc is not None and jar._proc.poll() is None
    assert get_meteor() is jar
    assert jar.aggregate(["a man is walking"], [["a man is walking"]]) == 1.0


def test_every_evaluation_jvm_runs_with_the_throughput_collector(monkeypatch):
    """The PTB tokenizer and the METEOR jars start with `text.JVM_OPTIONS` (the parallel
    collector: README "Evaluator"), before the official command's own arguments; the numbers
    are checked against the official structure by the other tests of this suite."""
    assert "-XX:+UseParallelGC" in text_module.JVM_OPTIONS
    real_popen, commands = text_module.subprocess.Popen, []

    def recording_popen(args, *a, **kw):
        commands.append(list(args))
        return real_popen(args, *a, **kw)

    monkeypatch.setattr(text_module.subprocess, "Popen", recording_popen)
    assert ptb_tokenize(["A man, walking."]) == ["a man walking"]
    assert commands and all(c[1:1 + len(text_module.JVM_OPTIONS)]
                            == list(text_module.JVM_OPTIONS) for c in commands)
    monkeypatch.undo()
    jar = get_meteor()
    with open(f"/proc/{jar._proc.pid}/cmdline", "rb") as f:
        argv = f.read().decode().split("\0")
    assert argv[1:1 + len(text_module.JVM_OPTIONS)] == list(text_module.JVM_OPTIONS)
    if jar.threads == 1:  # the jar's own main
        assert argv[argv.index("-jar") + 1:][:2] == ["-Xmx2G", "meteor-1.5.jar"]
    else:  # MeteorThreads: the same heap and jar arguments
        assert "-Xmx2G" in argv and argv[-7:-1] == ["-", "-", "-stdio", "-l", "en", "-norm"]


def test_one_setting_governs_every_evaluation_jvm(monkeypatch):
    """`text.JVM_OPTIONS` is read when a jar starts (what `benchmarks/evaluate_speed.py
    --jvm-options` relies on), and the official arguments follow it unchanged."""
    from captioner_jax.evaluation.meteor import METEOR_ARGS, meteor_command

    monkeypatch.setattr(text_module, "JVM_OPTIONS", ("-XX:+UseSerialGC",))
    assert meteor_command() == ["java", "-XX:+UseSerialGC", *METEOR_ARGS]
    assert METEOR_ARGS[:3] == ("-jar", "-Xmx2G", "meteor-1.5.jar")
    assert meteor_command(2, "/classes") == [
        "java", "-XX:+UseSerialGC", "-Xmx2G", "-cp", "meteor-1.5.jar:/classes", "MeteorThreads",
        "2", "-", "-", "-stdio", "-l", "en", "-norm"]
    with pytest.raises(ValueError, match="compiled"):
        meteor_command(2)
