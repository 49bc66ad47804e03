"""Shared defaults of the "text_vocab" stage configs (text_synthetic.py, text_activitynet.py)."""
from __future__ import annotations

import ml_collections

from configs.common import parse_arg, run_block  # noqa: F401 (re-exported)


def base_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.stage = "text_vocab"
    config.run = run_block()
    config.vocab_files = []  # caption files for the caption vocabulary
    config.count_threshold = 4  # PDVC: words seen >= 4 times
    config.concept_files = []  # caption files for the concept vocabulary (training only)
    config.idf_files = []  # caption files for the IDF table (training only)
    config.sentence_concept_files = []  # files whose per-sentence concept ids are written
    config.workers = 0  # tagging processes; 0 = all CPU cores
    config.nltk_data = ""  # extra NLTK data folder ("" = NLTK_DATA / NLTK defaults)
    config.concepts = ml_collections.ConfigDict()
    config.concepts.top_n = 1000
    config.concepts.pos_groups = ("noun", "verb", "adj", "adv")
    config.concepts.include_numbers = False
    config.concepts.lemmatize = True
    config.concepts.stop_words = ml_collections.config_dict.placeholder(tuple)  # None: default
    config.concepts.min_count = 1
    return config
