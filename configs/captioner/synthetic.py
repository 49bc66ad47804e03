"""PDVC captioner on the embedded synthetic data set (minutes on 2 CPU cores).

    python launch.py --config configs/captioner/synthetic.py:root=data/synthetic \
        --workdir runs/synthetic/captioner
    python launch.py --config configs/captioner/synthetic.py:root=data/synthetic,predict \
        --workdir runs/synthetic/captioner

Expects the synthetic_data stage's `{root}/captions/{train,val_1,val_2}.json`, the text_vocab
stage's `{root}/text/caption_vocab.json` (else a vocabulary is built from the training
captions) and per-video features `{features}/<video_id>.npy` (default `{root}/features`,
e.g. the output of the sa_tsp_extract stage). Switches (plus those of base.py):
  root=DIR, features=DIR, dim=N (feature dimension, for zero filling; default 512)
  runlocal  tiny model (hidden size 32, one encoder and one decoder layer) and 3 epochs
Model: PDVC's architecture at hidden size 128 (the synthetic grammar is small); num_steps 32.
"""
from __future__ import annotations

import os

from configs.captioner import base

# Switches of this file (plus base.COMMON_SWITCHES and base.XE_SWITCHES).
SWITCHES = dict(root="data/synthetic", features="", dim=512)


def get_config(arg: str | None = None):
    return build(base.parse_arg(arg, **base.COMMON_SWITCHES, **base.XE_SWITCHES, **SWITCHES))


def build(sw):
    """The config for parsed switches `sw` (also used by synthetic_scst.py)."""
    c = base.get_config()
    root = sw.root
    c.seed = 0
    c.data.train_captions = os.path.join(root, "captions", "train.json")
    c.data.val_captions = os.path.join(root, "captions", "val_1.json")
    c.data.vocab_path = os.path.join(root, "text", "caption_vocab.json")
    c.data.vocab_count_threshold = 1
    c.data.features = [dict(name="sa_tsp", path=sw.features or os.path.join(root, "features"),
                            format="npy", pattern="{video_id}.npy", dim=sw.dim)]
    c.data.num_steps = 32
    c.data.max_events = 4  # the generator's max events per video
    c.data.max_caption_len = 20
    c.data.batch_size = 4
    c.model.update(hidden_dim=128, ffn_dim=128, rnn_size=128, word_dim=64, att_hid=64,
                   num_heads=8, num_queries=6, max_event_count=4, cap_dropout=0.3)
    c.optim.lr = 5e-4
    c.optim.decay_start_epoch = 20
    c.optim.decay_every_epochs = 5
    c.num_epochs = 30
    c.eval_every_epochs = 10
    c.eval.batch_size = 4
    c.eval.max_len = 20
    c.eval.soda = True
    c.eval.references = [os.path.join(root, "captions", "val_1.json"),
                         os.path.join(root, "captions", "val_2.json")]
    c.log_every_steps = 10
    c.checkpoint_every_steps = 200
    if sw.runlocal:
        # One encoder and one decoder layer: the tests that run this config (end to end,
        # multi-host) compile the train step in 2/3 of the time of PDVC's 2 + 2; the
        # per-layer paths (aux losses, per-layer matching) run in tests/test_captioner_train.py
        # with 2 decoder layers.
        c.model.update(hidden_dim=32, ffn_dim=32, rnn_size=32, word_dim=16, att_hid=16,
                       num_heads=4, enc_layers=1, dec_layers=1)
        c.num_epochs = 3
        c.eval_every_epochs = 3
        c.eval.soda = False
    return base.apply_switches(c, sw)
