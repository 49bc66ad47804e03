"""Stage "text_vocab" on the synthetic data set (configs/data/synthetic.py).

    python launch.py --config configs/data/text_synthetic.py:data_dir=data/synthetic \
        --workdir data/synthetic/text

Switches: data_dir=PATH (the synthetic_data workdir; default data/synthetic), top_n=N
(default 100: the synthetic grammar has fewer content words than that, so all are kept),
count_threshold=N (default 1: every grammar word is a caption word).
"""
from __future__ import annotations

import os

from configs.data.text_common import base_config, parse_arg


def get_config(arg: str | None = None):
    switches = parse_arg(arg, data_dir="data/synthetic", top_n=100, count_threshold=1)
    data_dir = switches.data_dir
    f = lambda name: os.path.join(data_dir, "captions", name)  # noqa: E731
    config = base_config()
    config.vocab_files = [f("train.json")]
    config.count_threshold = switches.count_threshold
    config.concept_files = [f("train.json")]
    config.idf_files = [f("train.json")]
    config.sentence_concept_files = [f("train.json"), f("val_1.json"), f("val_2.json")]
    config.concepts.top_n = switches.top_n
    return config
