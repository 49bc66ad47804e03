"""Stage "text_vocab" on the real ActivityNet Captions annotations.

    python launch.py --config configs/data/text_activitynet.py --workdir work/text_anet

Switches (comma-separated key=value in the arg):
  data_dir=PATH   folder with train.json, val_1.json, val_2.json
                  (default ../shared/data/activitynet_captions).
  pdvc_vocab      build the caption vocabulary from train_modified + val_1 + val_2 as PDVC
                  did (reproduces vocabulary_activitynet.json). Default: train only, so that no
                  validation words leak into the model.
  top_n=N         concept vocabulary size (default 1000; the report does not give N).
"""
from __future__ import annotations

import os

from configs.data.text_common import base_config, parse_arg


def get_config(arg: str | None = None):
    switches = parse_arg(arg, data_dir="../shared/data/activitynet_captions", pdvc_vocab=False,
                         top_n=1000)
    data_dir = switches.data_dir
    f = lambda name: os.path.join(data_dir, name)  # noqa: E731
    config = base_config()
    if switches.pdvc_vocab:
        config.vocab_files = [f("train_modified.json"), f("val_1.json"), f("val_2.json")]
    else:
        config.vocab_files = [f("train.json")]
    config.concept_files = [f("train.json")]
    config.idf_files = [f("train.json")]
    config.sentence_concept_files = [f("train.json"), f("val_1.json"), f("val_2.json")]
    config.concepts.top_n = switches.top_n
    return config
