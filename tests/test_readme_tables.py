"""README tables are generated from a run's results.json."""
import json

import pytest

from captioner_jax.visualization import readme_tables

RESULTS = {
    "learned proposals": {"captioner": {"Bleu_4": 2.26, "METEOR": 11.37, "ROUGE_L": 22.4,
                                        "CIDEr": 48.35, "Recall": 64.41, "Precision": 73.47,
                                        "Bleu_1": 9.0}},
    "GT proposals": {"seed 0": {"METEOR": 16.59, "CIDEr": 75.48, "Recall": 100.0,
                                "Precision": 100.0}},
}


def test_readme_section_is_replaced_from_results(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps(RESULTS))
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- generated:demo:begin -->\nold numbers\n"
                      "<!-- generated:demo:end -->\noutro\n")
    readme_tables.main(["--results", str(tmp_path / "results.json"), "--readme", str(readme)])
    text = readme.read_text()
    assert "old numbers" not in text and text.startswith("intro\n") and text.endswith("outro\n")
    assert "11.37" in text and "16.59" in text and "BLEU1" not in text
    gt_table = text.split("GT proposals")[1]
    assert "Recall" not in gt_table  # GT proposals cover every event: no Recall column
    with pytest.raises(ValueError, match="markers"):
        readme_tables.replace_section("no markers", "demo", "x")
