"""Shared captioner config: PDVC's ActivityNet settings (`cfgs/anet_tsp_pdvc.yml`, LSTM-DSA).

Not launched directly; `synthetic.py` and `activitynet.py` fill in the data. Switches
(comma-separated key=value in the config arg; an unknown one is an error):
  head=light      the light LSTM caption head (PDVC "pdvcl") instead of LSTM-DSA
  batch=N, seed=N, devices=N, runlocal              (COMMON_SWITCHES: every captioner config)
  mode=gt         GT-proposal mode (PDVC `anet_*_pdvc_gt.yml`: queries from the GT events,
                  localisation/counter losses off; reports "METEOR with GT proposals")
  predict         stage captioner_predict (predict + submission JSON + evaluation)
  epochs=N, lr=X, eval_every=N (epochs), steps=N    (XE_SWITCHES: not the SCST configs)
Each stage's config holds only the keys that stage reads (`for_stage`): captioner_predict
has no optimiser or training-loop keys, captioner_scst none of the XE trainer's.
"""
from __future__ import annotations

import ml_collections

from configs.common import one_of, parse_arg, run_block  # noqa: F401 (re-exported)

# Switches every captioner config understands (None: keep the config's value).
COMMON_SWITCHES = dict(head="lstm_dsa", batch=int, seed=int, devices=int, runlocal=False)
# Switches of the XE trainer and predictor only (the SCST configs do not declare them).
XE_SWITCHES = dict(mode="queries", predict=False, epochs=int, lr=float, eval_every=int,
                   steps=int)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.stage = "captioner_train"
    c.seed = 777  # PDVC opts default
    c.run = run_block()
    c.mode = "queries"

    c.data = ml_collections.ConfigDict()
    c.data.train_captions = ""
    c.data.val_captions = ""
    c.data.vocab_path = ""
    c.data.vocab_count_threshold = 4
    # A list of FeatureSource mappings: name, path, format (npy|hdf5|bmt_i3d), pattern, dim,
    # mean, std. Concatenated on channels after resizing each to `num_steps`.
    c.data.features = []
    c.data.num_steps = 100
    c.data.rescale = True
    c.data.zero_fill_missing = True  # PDVC zero-fills missing feature files
    # True: any missing or corrupt feature file stops the stage (all listed in the workdir's
    # feature_problems.json, which is written either way).
    c.data.strict_features = False
    # XE training stops when more than this fraction of the training videos has no features
    # (a wrong path would otherwise train on zeros); 1.0 allows any number.
    c.data.max_missing_fraction = 0.5
    c.data.max_events = 30  # PDVC gt_proposal_sample_num
    c.data.max_caption_len = 30
    c.data.batch_size = 1  # global; PDVC trains with batch 1
    c.data.read_threads = 2
    c.data.max_val_videos = 0  # 0 = all

    c.model = ml_collections.ConfigDict(dict(
        hidden_dim=512, num_heads=8, ffn_dim=512, dropout=0.1, enc_layers=2, dec_layers=2,
        num_levels=4, enc_points=4, dec_points=4, num_queries=10, max_event_count=10,
        caption_head="lstm_dsa", cap_heads=1, cap_levels=4, cap_points=4, rnn_size=512,
        word_dim=512, att_hid=512, cap_dropout=0.5,
    ))
    c.matcher = ml_collections.ConfigDict(
        dict(cost_class=2.0, cost_bbox=0.0, cost_giou=4.0, alpha=0.25, gamma=2.0))
    c.loss_weights = ml_collections.ConfigDict(dict(
        loss_ce=2.0, loss_bbox=0.0, loss_giou=4.0, loss_counter=0.5, loss_caption=2.0))
    c.optim = ml_collections.ConfigDict(dict(
        lr=5e-5, weight_decay=1e-4, grad_clip=100.0, decay_start_epoch=8,
        decay_every_epochs=3, decay_rate=0.5))
    c.num_epochs = 30
    c.total_steps = 0  # 0 = num_epochs * steps per epoch
    c.eval_every_epochs = 1
    c.log_every_steps = 50
    c.checkpoint_every_steps = 2000
    c.keep_checkpoints = 3
    c.mesh = (("data", -1),)
    c.num_devices = 0  # 0 = all devices
    c.sharding = "replicate"

    c.eval = ml_collections.ConfigDict()
    c.eval.batch_size = 1
    c.eval.max_len = 30  # generated tokens (PDVC samples max_caption_len steps)
    c.eval.references = []
    c.eval.version = "2018"
    c.eval.soda = True
    c.eval.rerank = True
    c.eval.alpha = 1.0  # PDVC ec_alpha for LSTM-DSA
    c.eval.temperature = 2.0

    c.predict = ml_collections.ConfigDict()
    c.predict.captions = ""  # default: data.val_captions
    # captioner_predict and captioner_scst: the workdir of a trained run whose parameters (its
    # best, else latest checkpoint) and vocab.json the stage starts from ("" for
    # captioner_predict: this stage's own workdir).
    c.init_from = ""
    return c


# Which stage reads which key beyond the shared ones (stage, run, data, model, eval, mesh,
# num_devices): `for_stage` drops the others, so a config holds only keys its stage reads and
# an override of a key the stage would ignore (`--config.total_steps=100` on SCST) is an error.
_XE_ONLY = ("optim", "matcher", "loss_weights", "num_epochs", "total_steps",
            "eval_every_epochs")
_TRAINING = ("seed", "sharding", "log_every_steps", "checkpoint_every_steps",
             "keep_checkpoints", "data.batch_size")
_DROP = {
    "captioner_train": ("predict", "init_from"),
    # The vocabulary comes with the trained run (build.load_trained_run), not from captions.
    "captioner_predict": _XE_ONLY + _TRAINING + ("data.train_captions",
                                                 "data.vocab_count_threshold",
                                                 "data.max_missing_fraction"),
    # SCST evaluates without reranking whatever the XE run did (train_scst.py sets
    # eval.rerank on its evaluation config).
    "captioner_scst": _XE_ONLY + ("predict", "eval.rerank", "data.max_missing_fraction"),
}


def for_stage(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """`c` without the keys its stage (`c.stage`) never reads (see `_DROP`)."""
    for dotted in _DROP[c.stage]:
        node, _, leaf = dotted.rpartition(".")
        parent = c[node] if node else c
        if leaf in parent:
            del parent[leaf]
    return c


def apply_switches(c: ml_collections.ConfigDict,
                   sw: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The common switches of the module docstring (those of `sw`'s spec: the SCST configs
    declare no XE-only ones), then `for_stage`."""
    mode = one_of("mode", sw.get("mode", "queries"), ("queries", "gt", "gt_proposals"))
    if mode in ("gt", "gt_proposals"):
        c.mode = "gt_proposals"
        # PDVC `decide_two_stage`: localisation losses off in GT-proposal mode; its GT
        # config also sets count_loss_coef 0 and no reranking.
        for k in ("loss_ce", "loss_bbox", "loss_giou", "loss_counter"):
            c.loss_weights[k] = 0.0
        c.eval.rerank = False
    if one_of("head", sw.head, ("lstm_dsa", "light")) == "light":
        c.model.caption_head = "light"
        c.model.att_hid = 0
        c.eval.alpha = 0.3  # PDVC's ec_alpha default for the light head
    if sw.get("predict"):
        c.stage = "captioner_predict"
    for key, target in (("epochs", "num_epochs"), ("lr", "optim.lr"), ("seed", "seed"),
                        ("eval_every", "eval_every_epochs"), ("devices", "num_devices"),
                        ("batch", "data.batch_size"), ("steps", "total_steps")):
        if sw.get(key) is not None:
            node, _, leaf = target.rpartition(".")
            (c[node] if node else c)[leaf] = sw[key]
    if sw.get("batch") is not None:
        c.eval.batch_size = sw.batch
    return for_stage(c)
