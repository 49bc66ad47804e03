"""The evaluator against the official code, on real ActivityNet Captions annotations.

Golden numbers below were produced by running the reference code itself (PDVC
densevid_eval3 `evaluate2018.py` / `evaluate2021.py` with `-v`, fujiso/SODA v1.1 called as
PDVC's `eval_soda.py` does, PDVC `eval_para.py`; pip pycocoevalcap 1.2, Java 17) on the
submission that `make_submission(r1, seed=3, proposals_per_video=8)` generates for the first
24 val_1 videos (sorted ids) that have an ae-val paragraph, against val_1 + val_2 restricted to
those videos. The 2021 run draws its garbage strings unseeded; its output is deterministic.
"""
import json

import numpy as np
import pytest

from benchmarks.slow_path import slow_score_captions
from benchmarks.synthetic_submission import make_submission
from captioner_jax.evaluation import evaluate_submission, get_meteor, ptb_tokenize
from captioner_jax.evaluation.submission import load_references, load_submission
from captioner_jax.evaluation.text import preprocess_captions

GOLDEN_2018 = {
    "Bleu_1": 0.3331653669617752, "Bleu_2": 0.298290372935077, "Bleu_3": 0.28130839591970197,
    "Bleu_4": 0.2692308593419594, "METEOR": 0.21963171868015605, "ROUGE_L": 0.32929486623060794,
    "CIDEr": 2.453876208172611, "Recall": 0.7169766865079364, "Precision": 0.5989583333333334,
}
GOLDEN_2021 = {
    "Bleu_1": 0.33216611972315385, "Bleu_2": 0.29806624629533773, "Bleu_3": 0.28118205773333194,
    "Bleu_4": 0.2691379735857488, "METEOR": 0.24008098891979746, "ROUGE_L": 0.32336103845634256,
    "CIDEr": 2.4423828189150965, "Recall": 0.7169766865079364, "Precision": 0.5989583333333334,
}
GOLDEN_SODA_C = 0.16295948  # per file [P, R, F1] averaged: [0.11966047, 0.27225415, 0.16295948]
GOLDEN_PARA = {
    "para_Bleu_1": 0.44092465753405785, "para_Bleu_2": 0.38171124793163164,
    "para_Bleu_3": 0.3480358339790312, "para_Bleu_4": 0.32347684379507946,
    "para_METEOR": 0.378935165396735, "para_ROUGE_L": 0.453356650263468,
    "para_CIDEr": 0.11454588654145464,
}


@pytest.fixture(scope="module")
def real(shared_data):
    d = shared_data / "activitynet_captions"
    v1 = json.loads((d / "val_1.json").read_text())
    v2 = json.loads((d / "val_2.json").read_text())
    p1 = json.loads((d / "para" / "anet_entities_val_1_para.json").read_text())
    p2 = json.loads((d / "para" / "anet_entities_val_2_para.json").read_text())
    return v1, v2, p1, p2


@pytest.fixture(scope="module")
def golden_case(real):
    v1, v2, p1, p2 = real
    vids = [v for v in sorted(v1) if v in p1 or v in p2][:24]
    r1 = {v: v1[v] for v in vids}
    r2 = {v: v2[v] for v in vids if v in v2}
    paras = [{v: p1[v] for v in vids if v in p1}, {v: p2[v] for v in vids if v in p2}]
    return make_submission(r1, seed=3, proposals_per_video=8), [r1, r2], paras


@pytest.fixture(scope="module")
def coco_meteor():
    """pycocoevalcap's own `Meteor` wrapper code, talking to our already running jar.

    Starting a second JVM would double the test's cost; what is compared is the wrapper's
    request/response code path against ours, on the same jar and flags.
    """
    import threading

    from pycocoevalcap.meteor.meteor import Meteor

    class SharedJarMeteor(Meteor):
        def __init__(self, proc):  # no new process
            self.meteor_p = proc
            self.lock = threading.Lock()

        def __del__(self):  # the jar belongs to get_meteor(); do not kill it
            pass

    meteor = get_meteor()
    with meteor._lock:
        return SharedJarMeteor(meteor._proc)


def test_ptb_tokenize_observed_example_and_pycocoevalcap():
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    example = "A MAN (in red) says: \u201chello\u201d -- caf\u00e9, na\u00efve! Isn't it?"
    sentences = [example, "", " The man's dog isn't\nhere. ", "abc123!@#", ". . .", "A, B; c!"]
    got = preprocess_captions(sentences)
    assert got[0] == "a man -lrb- in red -rrb- says hello caf na ve is n't it"
    assert got[1] == "" and got[3] == "abc123!@#"
    from captioner_jax.evaluation.text import remove_nonascii

    want = PTBTokenizer().tokenize(
        {i: [{"caption": remove_nonascii(s)}] for i, s in enumerate(sentences)})
    assert got == [want[i][0] for i in range(len(sentences))]
    assert ptb_tokenize([]) == []


def test_ptb_tokenizer_reads_past_the_line_end_as_the_official_batch_does():
    """The jar's look-ahead across lines (why official runs differ with PYTHONHASHSEED)."""
    sentence = "Each one with a capital T."
    assert ptb_tokenize([sentence, "The man runs."])[0] == "each one with a capital t"
    assert ptb_tokenize([sentence, "we see it"])[0] == "each one with a capital t."


def test_meteor_agrees_with_pycocoevalcap_wrapper(coco_meteor):
    hyps = ["a man is playing the guitar", "", "the dogs run  on the field",
            "a woman ||| is talking", "abc123"]
    refs = [["a man plays a guitar"], ["a man"], ["a dog is running in a field"],
            ["a woman is speaking to the camera"], ["abc123!@#"]]
    gts = {i: r for i, r in enumerate(refs)}
    res = {i: [h] for i, h in enumerate(hyps)}
    want_agg, want_seg = coco_meteor.compute_score(gts, res)
    meteor = get_meteor()
    np.testing.assert_allclose(meteor.pair_scores(hyps, refs), want_seg, rtol=1e-12)
    assert meteor.aggregate(hyps, refs) == pytest.approx(want_agg, rel=1e-12)
    # The aggregate is not the mean of the segment scores.
    assert meteor.aggregate(hyps[:2], refs[:2]) != pytest.approx(np.mean(want_seg[:2]))


def test_meteor_presummed_aggregate_equals_per_pair_eval(real):
    """`aggregates` (one pre-summed statistics line per group) == `EVAL` of every pair's line,
    bit for bit, including the jar's quirk of not adding the chunks of a perfect match."""
    v1, v2, _, _ = real
    vids = sorted(v1)[:40]
    hyps = [s for v in vids for s in v1[v]["sentences"]]
    refs = [[s] for v in vids for s in (v2[v]["sentences"] if v in v2 else v1[v]["sentences"])]
    n = min(len(hyps), len(refs))
    hyps, refs = ptb_tokenize(hyps[:n]), [[r] for r in ptb_tokenize([r[0] for r in refs[:n]])]
    hyps += ["a man rides a horse", "the", "a b c d", "abc123"]
    refs += [["a man rides a horse"], ["the"], ["d c b a"], ["abc123!@#"]]
    meteor = get_meteor()
    stats = meteor.stats(hyps, refs)
    perfect, word, swapped, garbage = len(stats) - 4, len(stats) - 3, len(stats) - 2, len(stats) - 1
    rng = np.random.default_rng(0)
    groups = [rng.choice(len(stats), size=int(rng.integers(1, 30))).tolist() for _ in range(60)]
    groups += [[perfect], [perfect, perfect], [perfect, word, 3], [swapped], [garbage],
               [garbage, perfect, swapped], list(range(len(stats)))]
    lines = [[stats[j] for j in g] for g in groups]
    want = np.asarray([agg for _, agg in meteor.evaluate(lines)])
    got = meteor.aggregates(stats, groups)
    np.testing.assert_array_equal(got, want)
    # Two perfect matches aggregate to 1 only because their chunks are not summed.
    assert got[61] == 1.0
    with pytest.raises(ValueError, match="at least one"):
        meteor.aggregates(stats, [[0], []])


@pytest.mark.parametrize("version, golden", [("2018", GOLDEN_2018), ("latest", GOLDEN_2021)])
def test_equals_official_script(golden_case, version, golden):
    sub, refs, _ = golden_case
    out = evaluate_submission(sub, refs, version=version)
    for key, value in golden.items():
        assert out[key] == pytest.approx(100 * value, abs=5e-5), key
    assert out["num_videos"] == 24


def test_soda_and_paragraph_equal_reference_code(golden_case):
    sub, refs, paras = golden_case
    out = evaluate_submission(sub, refs, tious=(0.5,), soda=True, para_references=paras)
    assert out["SODA_c"] == pytest.approx(100 * GOLDEN_SODA_C, abs=5e-5)
    for key, value in GOLDEN_PARA.items():
        assert out[key] == pytest.approx(100 * value, abs=5e-5), key


def test_fast_path_equals_slow_path_on_real_annotations(real, coco_meteor):
    """Other videos, other seed, 'latest' (slow path draws one garbage string per pair).
    The slow path tokenizes the official per-threshold documents whole, the fast path each
    line in the same look-ahead context: equal to 1e-9."""
    v1, v2, _, _ = real
    vids = sorted(v1)[1000:1020]
    files = [{v: v1[v] for v in vids}, {v: v2[v] for v in vids if v in v2}]
    sub_dict = make_submission(files[0], seed=5, proposals_per_video=7)
    sub = load_submission(sub_dict)
    refs, _ = load_references(files)
    tious = (0.3, 0.7)
    fast = evaluate_submission(sub_dict, files, version="latest", tious=tious)
    slow = slow_score_captions(sub, refs, version="latest", tious=tious, coco_meteor=coco_meteor)
    for t in tious:
        for key, value in slow["per_tiou"][t].items():
            assert fast["per_tiou"][t][key] == pytest.approx(value, abs=1e-9), (t, key)
    assert fast["METEOR"] > 0 and fast["CIDEr"] > 0


def test_gt_proposal_mode_both_versions_agree(real, shared_data):
    """Captions for the reference segments: P = R = 100 and no garbage pair, so 2018 = latest."""
    v1, v2, _, _ = real
    bmt = json.loads((shared_data / "activitynet_captions" / "predictions"
                      / "bmt_captioning_results_val_1_e26.json").read_text())
    vids = sorted(v for v in bmt["results"] if v in v1)[:15]
    sub = {**bmt, "results": {v: bmt["results"][v] for v in vids}}
    refs = [{v: v1[v] for v in vids}]
    a = evaluate_submission(sub, refs, version="2018")
    b = evaluate_submission(sub, refs, version="latest")
    assert a["Recall"] == pytest.approx(100.0) and a["Precision"] == pytest.approx(100.0)
    for key in ("Bleu_4", "METEOR", "ROUGE_L", "CIDEr"):
        assert a[key] == pytest.approx(b[key], abs=1e-9), key
    assert 0 < a["METEOR"] < 100


def test_cli_and_launch_stage_write_the_same_numbers(golden_case, tmp_path, capsys):
    import ml_collections

    from captioner_jax.evaluate import main as cli_main
    from captioner_jax.evaluation.stage import run as stage_run
    from configs.evaluate import get_config

    sub, refs, _ = golden_case
    paths = []
    for name, obj in [("sub", sub), ("r1", refs[0]), ("r2", refs[1])]:
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(obj))
    out_json = tmp_path / "cli.json"
    rc = cli_main(["--submission", str(paths[0]), "--references", str(paths[1]), str(paths[2]),
                   "--tious", "0.3", "0.5", "0.7", "0.9", "--json", str(out_json)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "average" in printed and f"{100 * GOLDEN_2018['METEOR']:.4f}" in printed
    cli = json.loads(out_json.read_text())
    assert cli["METEOR"] == pytest.approx(100 * GOLDEN_2018["METEOR"], abs=5e-5)
    assert set(cli["per_tiou"]) == {"0.3", "0.5", "0.7", "0.9"}

    config = get_config("version=2018")
    assert isinstance(config, ml_collections.ConfigDict) and config.stage == "evaluate"
    with config.unlocked():
        config.submission = str(paths[0])
        config.references = [str(paths[1]), str(paths[2])]
    result = stage_run(config, str(tmp_path))
    assert result["CIDEr"] == pytest.approx(cli["CIDEr"], abs=1e-9)
    assert json.loads((tmp_path / "eval_results.json").read_text())["CIDEr"] == cli["CIDEr"]
    # A bad submission: exit status 2 and a message naming the video.
    paths[0].write_text(json.dumps({"results": {"v_x": [{"sentence": 1, "timestamp": [0, 1]}]}}))
    assert cli_main(["--submission", str(paths[0]), "--references", str(paths[1])]) == 2
    assert "video 'v_x', entry 0" in capsys.readouterr().err


def test_soda_empty_list_counts_zero_unpredicted_is_ignored():
    refs = {"v_a": {"timestamps": [[0, 10], [10, 20]],
                    "sentences": ["A man plays guitar.", "He stops playing."]},
            "v_b": {"timestamps": [[1, 8]], "sentences": ["A dog runs on the grass."]}}
    preds = [{"sentence": "a dog runs on grass", "timestamp": [1, 7]},
             {"sentence": "a dog", "timestamp": [0, 9]}]
    only_b = evaluate_submission({"results": {"v_b": preds}}, refs, soda=True)
    with_empty_a = evaluate_submission({"results": {"v_b": preds, "v_a": []}}, refs, soda=True)
    assert 0 < only_b["SODA_c"] <= 100
    assert with_empty_a["SODA_c"] == pytest.approx(only_b["SODA_c"] / 2)
