"""Caption vocabulary (PDVC), concept vocabulary (NLTK), IDF table, text_vocab stage."""
import json
import math
import re

import numpy as np
import pytest

from data_prep.text import nltk_resources
from data_prep.text.caption_vocab import (
    CaptionVocab,
    build_caption_vocab,
    build_tokens,
    encode_tokens,
)
from data_prep.text.concepts import ConceptOptions, ConceptVocab, build_concept_vocab, tokenize
from data_prep.text.idf import IdfTable, build_idf


def _sentences(path):
    return [s for v in json.loads(path.read_text()).values() for s in v["sentences"]]


def test_reproduces_pdvc_vocabulary(shared_data):
    d = shared_data / "activitynet_captions"
    sentences = [s for f in ("train_modified.json", "val_1.json", "val_2.json")
                 for s in _sentences(d / f)]
    vocab = build_caption_vocab(sentences, count_threshold=4)
    reference = (d / "vocabulary_activitynet.json").read_bytes()
    assert vocab.to_json() == json.loads(reference)
    assert json.dumps(vocab.to_json()).encode() == reference  # byte for byte
    assert (vocab.size, vocab.unk_id, vocab.word(1)) == (5747, 5747, "a")
    assert vocab.word_to_ix["<bos>"] == 5745 and vocab.word_to_ix["<eos>"] == 5746
    train_only = build_caption_vocab(_sentences(d / "train.json"), 4)
    assert train_only.size < vocab.size  # validation words are not in the default vocabulary


def test_pdvc_tokenisation_rules():
    # Hand-applied PDVC rules: marks -> space, double spaces collapsed, strip, lower, split.
    assert build_tokens(' The man\'s "bike"-ride, then/STOP.') == [
        "the", "man's", "bike", "ride", "then", "stop"]
    assert build_tokens("a\\nb\\c") == ["a", "b", "c"]
    assert build_tokens("   ") == [""]  # PDVC counts an empty word here too
    assert encode_tokens(" A  b\tC.") == ["a", "b", "c"]


def test_encode_decode_by_hand(tmp_path):
    vocab = build_caption_vocab(["a man runs.", " A man jumps!", "a dog"], count_threshold=2)
    # first-occurrence order of words with count >= 2, then <bos>, <eos>, UNK
    assert vocab.words == ["a", "man", "<bos>", "<eos>", "UNK"]
    ids = vocab.encode("A man walks, a man.", max_len=6)
    np.testing.assert_array_equal(ids, [0, 1, 2, 5, 1, 0])  # truncated to max_len - 2 words
    assert ids.dtype == np.int32
    np.testing.assert_array_equal(vocab.encode("a man", 6), [0, 1, 2, 0, 0, 0])
    assert vocab.decode([1, 2, 5, 0, 1]) == "a man UNK."
    assert vocab.decode(vocab.encode("Man a", 8), skip_bos=True) == "man a."
    assert vocab.decode([0, 1]) == ""
    vocab.save(tmp_path / "v.json")
    assert CaptionVocab.load(tmp_path / "v.json").words == vocab.words
    (tmp_path / "bad.json").write_text('{"ix_to_word": {"1": "a"}, "word_to_ix": {"b": 1}}')
    with pytest.raises(ValueError, match="bad.json"):
        CaptionVocab.load(tmp_path / "bad.json")


@pytest.fixture(scope="module")
def synthetic_concepts(synthetic_dataset, nltk_data_dir):
    sentences = _sentences(synthetic_dataset / "captions/train.json")
    return sentences, build_concept_vocab(sentences, ConceptOptions(top_n=60))


def test_synthetic_concepts_known_words_and_counts(synthetic_concepts):
    sentences, vocab = synthetic_concepts
    pos = dict(zip(vocab.words, vocab.pos))
    counts = dict(zip(vocab.words, vocab.counts))
    assert vocab.size <= 60 and vocab.num_sentences == len(sentences)
    assert vocab.counts == sorted(vocab.counts, reverse=True)
    for color in ("red", "blue", "white"):
        n = sum(len(re.findall(rf"\b{color}\b", s.lower())) for s in sentences)
        if n:
            assert counts.get(color) == n
    shapes = [w for w in ("circle", "square", "triangle", "diamond", "cross") if w in pos]
    # The tagger misreads a few ("orange crosses drop" -> crosses/VBZ); most are nouns.
    assert len(shapes) >= 3 and sum(pos[w] == "noun" for w in shapes) >= len(shapes) - 1
    # singular and plural forms are one lemma
    n = sum(len(re.findall(r"\bsquares?\b", s.lower())) for s in sentences)
    assert counts.get("square", 0) == n
    for adv in ("slowly", "quickly", "rapidly", "gently", "steadily", "swiftly"):
        assert pos.get(adv, "adv") == "adv"
    assert "be" not in pos and "a" not in pos  # stop words, determiners


def test_per_sentence_concepts_and_count(synthetic_concepts, tmp_path):
    _, vocab = synthetic_concepts
    sentence = "Two big red squares are slowly moving to the left."
    ids = vocab.concept_ids([sentence])[0]
    words = {vocab.words[i] for i in ids}
    expected = {"big", "red", "square", "slowly", "move", "left"} & set(vocab.words)
    assert expected <= words and len(expected) >= 4
    assert vocab.count_unique_concepts(sentence) == len(words)
    assert vocab.count_unique_concepts("The red square and a red square.") == len(
        {"red", "square"} & set(vocab.words))
    hot = vocab.multi_hot([sentence, "nothing here"])
    assert hot.shape == (2, vocab.size) and hot[0].sum() == len(ids) and hot[1].sum() == 0
    vocab.save(tmp_path / "c.json")
    loaded = ConceptVocab.load(tmp_path / "c.json")
    assert loaded.words == vocab.words and loaded.options == vocab.options


def test_real_concepts_are_sane(shared_data, nltk_data_dir):
    sentences = _sentences(shared_data / "activitynet_captions/val_1.json")[:1500]
    vocab = build_concept_vocab(sentences, ConceptOptions(top_n=200))
    pos = dict(zip(vocab.words, vocab.pos))
    assert vocab.words[0] == "man" and pos["man"] == "noun"
    for word, p in (("woman", "noun"), ("camera", "noun"), ("play", "verb"),
                    ("walk", "verb"), ("ride", "verb")):
        assert pos.get(word) == p, word
    # Independent lower bound: "man"/"men" as separate words are almost always nouns.
    n_man = sum(len(re.findall(r"\b(man|men)\b", s.lower())) for s in sentences)
    assert 0.95 * n_man <= vocab.counts[0] <= n_man
    assert vocab.count_unique_concepts("A man is riding a bike quickly.") >= 2


def test_lemmatizer_prefers_frequent_lemma(nltk_data_dir):
    lem = nltk_resources.Lemmatizer()
    assert lem("riding", "v") == "ride"  # NLTK's shortest-candidate rule gives "rid"
    assert lem("men", "n") == "man" and lem("bigger", "a") == "big"
    assert tokenize("The man's dog doesn't run 3.5 km.") == [
        "The", "man", "'s", "dog", "does", "n't", "run", "3.5", "km", "."]


def test_missing_nltk_data_error_says_how_to_install(monkeypatch, tmp_path):
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    with pytest.raises(nltk_resources.MissingNltkDataError, match="nltk.downloader"):
        nltk_resources.require("tagger", "wordnet")


def test_idf_by_hand(tmp_path):
    table = build_idf(["A man runs.", "a man, a dog!", "The cat."])
    assert table.num_documents == 3
    assert table.idf("a") == pytest.approx(math.log(3 / 2))
    assert table.idf("dog") == pytest.approx(math.log(3))
    assert table.idf("UNK") == 0.0 and table.idf("never") == 0.0
    assert table.max_idf("a man DOG") == pytest.approx(math.log(3))
    assert table.max_idf("") == 0.0
    table.save(tmp_path / "idf.json")
    assert IdfTable.load(tmp_path / "idf.json") == table


def test_text_artefact_loaders_name_an_invalid_file(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{"concepts": [')
    for load in (IdfTable.load, ConceptVocab.load, CaptionVocab.load):
        with pytest.raises(ValueError, match=r"broken\.json: not valid JSON"):
            load(bad)


def test_text_stage_on_synthetic(synthetic_dataset, nltk_data_dir, tmp_path):
    from configs.data.text_synthetic import get_config
    from data_prep.text.stage import run

    config = get_config(f"data_dir={synthetic_dataset}")
    config.workers = 1
    result = run(config, str(tmp_path))
    vocab = CaptionVocab.load(tmp_path / "caption_vocab.json")
    concepts = ConceptVocab.load(tmp_path / "concepts.json")
    idf = IdfTable.load(tmp_path / "idf.json")
    assert result["caption_vocab_size"] == vocab.size and "red" in vocab.word_to_ix
    assert concepts.size == result["num_concepts"] > 20
    per_sentence = json.loads((tmp_path / "sentence_concepts/val_2.json").read_text())
    captions = json.loads((synthetic_dataset / "captions/val_2.json").read_text())
    assert per_sentence.keys() == captions.keys()
    for vid, ids in per_sentence.items():
        assert len(ids) == len(captions[vid]["sentences"])
        assert all(0 <= i < concepts.size for sent in ids for i in sent)
    assert idf.num_documents == len(_sentences(synthetic_dataset / "captions/train.json"))
