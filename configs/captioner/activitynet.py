"""PDVC captioner on ActivityNet Captions with TSP-style features (PDVC `anet_tsp_pdvc.yml`).

    python launch.py --config configs/captioner/activitynet.py:features=DIR \
        --workdir runs/activitynet/captioner

Switches (plus those of `configs/captioner/base.py`):
  captions=DIR    ActivityNet Captions files (default ../shared/data/activitynet_captions)
  features=DIR    per-video `.npy` features of our SA-TSP encoder (one (N, 512) array per
                  video, named `<video_id>.npy`; default runs/activitynet/features/sa_tsp)
  h5=PATH         instead: TSP's single HDF5 file keyed by video id
  dim=N           dimension of those features (default 512: R(2+1)D-34; other encoders'
                  exports, e.g. the small variant of a runlocal pipeline, differ)
  extra=i3d+vggish  also concatenate BMT-style I3D (`<id>_rgb/flow.npy`, 2048-d) and
                  VGGish (`<id>_vggish.npy`, 128-d) features from `i3d_dir=`/`vggish_dir=`
                  (the report's best combination "SA-TSP + I3D + VGGish")
  vocab=PATH      caption vocabulary (default: PDVC's vocabulary_activitynet.json)
  runlocal        50 training / 20 validation videos, 2 epochs, small model (hidden size
                  64, one encoder and one decoder layer)
"""
from __future__ import annotations

import os

from configs.captioner import base

_SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data",
                       "activitynet_captions")


# Switches of this file (plus base.COMMON_SWITCHES and base.XE_SWITCHES).
SWITCHES = dict(captions=os.path.normpath(_SHARED), features="runs/activitynet/features/sa_tsp",
                h5="", dim=512, extra="", i3d_dir="data/i3d", vggish_dir="data/vggish", vocab="")


def get_config(arg: str | None = None):
    return build(base.parse_arg(arg, **base.COMMON_SWITCHES, **base.XE_SWITCHES, **SWITCHES))


def build(sw):
    """The config for parsed switches `sw` (also used by activitynet_scst.py)."""
    c = base.get_config()
    captions = sw.captions
    c.data.train_captions = os.path.join(captions, "train_modified.json")
    c.data.val_captions = os.path.join(captions, "val_1.json")
    c.data.vocab_path = sw.vocab or os.path.join(captions, "vocabulary_activitynet.json")
    if sw.h5:
        c.data.features = [dict(name="tsp", path=sw.h5, format="hdf5", dim=sw.dim)]
    else:
        c.data.features = [dict(name="sa_tsp", path=sw.features, format="npy",
                                pattern="{video_id}.npy", dim=sw.dim)]
    extra = [e for e in sw.extra.split("+") if e]
    for name in extra:
        base.one_of("extra", name, ("i3d", "vggish"))
    if "i3d" in extra:
        c.data.features.append(dict(name="i3d", path=sw.i3d_dir, format="bmt_i3d",
                                    pattern="{video_id}_{stream}.npy", dim=2048))
    if "vggish" in extra:
        c.data.features.append(dict(name="vggish", path=sw.vggish_dir, format="npy",
                                    pattern="{video_id}_vggish.npy", dim=128))
    c.eval.references = [os.path.join(captions, "val_1.json"),
                         os.path.join(captions, "val_2.json")]
    if sw.runlocal:
        c.model.update(hidden_dim=64, ffn_dim=64, rnn_size=64, word_dim=64, att_hid=64,
                       enc_layers=1, dec_layers=1)  # compiles in 2/3 of the time of 2 + 2
        c.num_epochs = 2
        c.data.max_val_videos = 20
        c.eval.soda = False
        c.log_every_steps = 5
    return base.apply_switches(c, sw)
