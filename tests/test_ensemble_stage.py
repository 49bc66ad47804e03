"""The "ensemble" stage end to end on the tiny synthetic data set with the data layer's real
concept vocabulary and IDF table, and the official evaluator."""
import json

import ml_collections
import pytest

from captioner_jax.ensemble import stage
from data_prep.annotations.activitynet_captions import read_captions
from data_prep.text.concepts import build_concept_vocab
from data_prep.text.idf import build_idf


def _degrade(sentence: str, keep_words: int) -> str:
    return " ".join(sentence.strip().rstrip(".").split()[:keep_words]) + "."


@pytest.fixture(scope="module")
def ensemble_inputs(synthetic_dataset, nltk_data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble")
    caps = synthetic_dataset / "captions"
    train = [s for v in read_captions(str(caps / "train.json")).values() for s in v.sentences]
    build_concept_vocab(train).save(root / "concepts.json")
    build_idf(train).save(root / "idf.json")
    val = json.loads((caps / "val_1.json").read_text())
    # Three members on the GT proposals: member m keeps the whole GT sentence of events with
    # index % 3 == m and only its first 2 words elsewhere, so every member is best on a
    # different third of the events and the concept rule should pick those.
    paths = []
    for m in range(3):
        results = {
            vid: [{"sentence": _degrade(s, 40 if i % 3 == m else 2), "timestamp": ts,
                   "logprob": -1.0 - m}
                  for i, (s, ts) in enumerate(zip(v["sentences"], v["timestamps"]))]
            for vid, v in val.items()
        }
        path = root / f"member{m}.json"
        path.write_text(json.dumps({"version": "VERSION 1.0", "results": results,
                                    "external_data": {"used": False}}))
        paths.append(str(path))
    return root, paths, caps


def _config(root, paths, caps, rule="concepts_then_idf", references=()):
    c = ml_collections.ConfigDict()
    c.stage = "ensemble"
    c.predictions = paths
    c.model_names = ["m0", "m1", "m2"]
    c.proposals = "gt"
    c.proposals_file = str(caps / "val_1.json")
    c.proposals_model = 0
    c.rule = rule
    c.rule_kwargs = {}
    c.concept_vocab = str(root / "concepts.json")
    c.idf_table = str(root / "idf.json")
    c.logprob_field = "logprob"
    c.references = list(references)
    c.eval_version = "2018"
    return c


def test_ensemble_stage_beats_every_member(ensemble_inputs, tmp_path):
    root, paths, caps = ensemble_inputs
    refs = [str(caps / "val_1.json")]  # one reference file keeps the 4 evaluations cheap
    summary = stage.run(_config(root, paths, caps, references=refs), str(tmp_path))
    sub = json.loads((tmp_path / "ensemble_submission.json").read_text())
    choices = json.loads((tmp_path / "ensemble_choices.json").read_text())
    val = json.loads((caps / "val_1.json").read_text())
    assert set(sub["results"]) == set(val)
    n = sum(len(v["timestamps"]) for v in val.values())
    assert summary["num_proposals"] == n and sum(summary["wins"].values()) == n
    # The long (complete) caption of each event is the one picked: its member wins there.
    for vid, entries in choices.items():
        assert [c["winner"] for c in entries] == [i % 3 for i in range(len(entries))], vid
    metrics = summary["metrics"]
    best_member = max(metrics[m]["METEOR"] for m in ("m0", "m1", "m2"))
    assert metrics["ensemble"]["METEOR"] > best_member
    # mean log-prob rule: member 0 (logprob -1) wins everything.
    summary = stage.run(_config(root, paths, caps, rule="mean_logprob"), str(tmp_path / "lp"))
    assert summary["wins"] == {"m0": n, "m1": 0, "m2": 0}


def test_ensemble_stage_errors_name_the_file(ensemble_inputs, tmp_path):
    root, paths, caps = ensemble_inputs
    c = _config(root, paths[:2] + [str(tmp_path / "nope.json")], caps)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        stage.run(c, str(tmp_path))
    c = _config(root, paths, caps)
    c.idf_table = str(tmp_path / "missing_idf.json")
    with pytest.raises(FileNotFoundError, match="text_vocab"):
        stage.run(c, str(tmp_path))
