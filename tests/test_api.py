"""Released-weights path end to end, and the Python API (data_prep/orchestration/api.py).

Randomly initialised weights in PyTorch layout stand in for the released checkpoints: a tiny
R(2+1)D state dict with TSP's key names (512-d output, as TSP's features) is imported as
`python -m sa_tsp_jax.import_torch` does (TSP geometry: 16 frames at 15 fps, 128x171, crop
112), a tiny PDVC state dict with PDVC's key names as `python -m captioner_jax.import_pdvc`
does; then `configs/caption_video.py:encoder=...,captioner=...` and `DenseCaptioner` caption a
generated mp4. (The .pth reading itself is covered by tests/test_import_pdvc.py and
tests/test_sa_tsp_import.py where torch is installed.)
"""
from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from captioner_jax import build, import_pdvc
from captioner_jax.models.pdvc import PDVC
from data_prep.orchestration import registry
from data_prep.orchestration.api import DenseCaptioner, Event
from data_prep.orchestration.config_files import load_config_file
from sa_tsp_jax import export, import_torch
from tests.shard_fixtures import SRC_FPS, write_mp4
from tests.test_import_pdvc import OPT, write_vocab

STEM, WIDTHS = 6, (8, 16, 32, 512)  # one block per stage; 512-d features like TSP's


def _mid(i, o):
    return (i * o * 27) // (9 * i + 3 * o)  # TSP's R(2+1)D mid-plane rule


def tsp_state_dict(rng) -> dict:
    """A tiny R(2+1)D with TSP's key names (features.*, fc1 action head, fc2 region head)."""
    sd = {}

    def conv(name, shape):
        sd[name] = rng.normal(0, np.sqrt(2.0 / np.prod(shape[1:])), shape).astype(np.float32)

    def bn(name, c):
        sd[f"{name}.weight"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        sd[f"{name}.bias"] = rng.normal(0, 0.1, c).astype(np.float32)
        sd[f"{name}.running_mean"] = rng.normal(0, 0.1, c).astype(np.float32)
        sd[f"{name}.running_var"] = rng.uniform(0.5, 1.5, c).astype(np.float32)

    conv("features.stem.0.weight", (STEM, 3, 1, 7, 7))
    bn("features.stem.1", STEM)
    conv("features.stem.3.weight", (WIDTHS[0], STEM, 3, 1, 1))
    bn("features.stem.4", WIDTHS[0])
    cin = WIDTHS[0]
    for li, w in enumerate(WIDTHS, start=1):
        for k, (i, m) in ((1, (cin, _mid(cin, w))), (2, (w, _mid(w, w)))):
            base = f"features.layer{li}.0.conv{k}"
            conv(f"{base}.0.0.weight", (m, i, 1, 3, 3))
            bn(f"{base}.0.1", m)
            conv(f"{base}.0.3.weight", (w, m, 3, 1, 1))
            bn(f"{base}.1", w)
        if li > 1:
            conv(f"features.layer{li}.0.downsample.0.weight", (w, cin, 1, 1, 1))
            bn(f"features.layer{li}.0.downsample.1", w)
        cin = w
    sd["fc1.weight"] = rng.normal(0, 0.1, (3, WIDTHS[-1])).astype(np.float32)
    sd["fc1.bias"] = np.zeros(3, np.float32)
    return sd


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """(encoder export dir, captioner run dir, a 3 s mp4, a broken file)."""
    root = tmp_path_factory.mktemp("released")
    variables, cfg, _ = import_torch.convert_state_dict(tsp_state_dict(np.random.default_rng(0)))
    enc = root / "tsp_jax"
    export.save_variables(str(enc), variables, cfg, export.TSP_GEOMETRY)

    opt = dict(OPT, feature_dim=512, frame_embedding_num=100)
    model_cfg, _ = import_pdvc.model_settings(opt)
    model = build.build_model(model_cfg, 13)
    params = jax.jit(lambda: model.init(
        {"params": jax.random.PRNGKey(3)}, jnp.zeros((1, 100, 512)), jnp.ones((1, 100), bool),
        jnp.ones((1,)), method=PDVC.init_all))()["params"]
    sd = import_pdvc.to_state_dict(jax.tree.map(np.asarray, params), model_cfg)
    write_vocab(root / "data" / "vocab.json")
    cap = root / "pdvc_jax"
    import_pdvc.import_checkpoint(str(root / "save" / "r" / "model-best.pth"), str(cap),
                                  state_dict=sd, opt=opt)
    videos = root / "videos"
    videos.mkdir()
    write_mp4(videos / "clip_a.mp4", 1, 3 * SRC_FPS)
    write_mp4(videos / "clip_b.mp4", 2, 2 * SRC_FPS)
    (videos / "broken.mp4").write_bytes(b"not a video")
    return str(enc), str(cap), videos


def _check_events(events, duration):
    assert events, "no events: the check would be vacuous"
    for e in events:
        assert isinstance(e, Event) and isinstance(e.sentence, str)
        assert 0.0 <= e.start <= e.end <= duration + 1e-6


def test_caption_video_config_with_imported_weights(released, tmp_path):
    enc, cap, videos = released
    config = load_config_file(f"configs/caption_video.py:encoder={enc},captioner={cap},batch=8")
    extract = load_config_file(config.encoder.config)
    assert (extract.stride, extract.init_from) == (16, enc)  # TSP: clips every 16 frames
    assert export.load_geometry(enc) == export.TSP_GEOMETRY
    predict = load_config_file(config.captioner.config)
    assert predict.stage == "captioner_predict" and predict.data.num_steps == 100
    config.video = str(videos / "clip_a.mp4")
    result = registry.resolve_stage(config.stage)(config, str(tmp_path))
    assert result == {"captioned": 1, "skipped": 0}
    events = json.loads((tmp_path / "captions.json").read_text())["results"]["clip_a"]
    assert events and all(0 <= e["timestamp"][0] <= e["timestamp"][1] <= 3.0 + 1e-6
                          for e in events)
    assert (tmp_path / "html" / "clip_a.html").is_file()
    index = (tmp_path / "html" / "index.html").read_text()
    assert 'href="clip_a.html"' in index  # caption_video writes an index page
    feats = np.load(tmp_path / "encoder" / "features" / "clip_a.npy")
    # 3 s at 15 fps = 45 frames -> floor((45 - 16) / 16) + 1 = 2 clips of 512 channels.
    assert feats.shape == (2, 512)


def test_config_refuses_half_a_pair_and_gt_proposal_runs(released, tmp_path):
    enc, cap, _ = released
    with pytest.raises(ValueError, match="give both encoder=DIR"):
        load_config_file(f"configs/caption_video.py:encoder={enc}")
    gt = tmp_path / "gt"
    gt.mkdir()
    info = json.loads(open(f"{cap}/model_info.json").read())
    (gt / "model_info.json").write_text(json.dumps(dict(info, mode="gt_proposals")))
    with pytest.raises(ValueError, match="needs learned proposals"):
        load_config_file(f"configs/caption_video.py:encoder={enc},captioner={gt}")


@pytest.fixture(scope="module")
def captioner(released):
    enc, cap, _ = released
    return DenseCaptioner.load(enc, cap, batch=8)


def test_api_single_and_batch(captioner, released, tmp_path):
    _, _, videos = released
    a = captioner(videos / "clip_a.mp4")
    _check_events(a, 3.0)
    both = captioner([str(videos / "clip_b.mp4"), str(videos / "broken.mp4"),
                      str(videos / "clip_a.mp4")], skip_unreadable=True, workdir=str(tmp_path))
    assert len(both) == 3 and both[1] is None
    _check_events(both[0], 2.0)
    assert both[2] == a  # the same video gives the same events alone or in a batch
    assert (tmp_path / "html" / "clip_b.html").is_file()  # a workdir keeps the pages
    # The same workdir again, other videos: the last call's outputs are replaced.
    assert captioner(str(videos / "clip_a.mp4"), workdir=str(tmp_path)) == a
    assert not (tmp_path / "html" / "clip_b.html").exists()


def test_api_errors(captioner, released, tmp_path):
    enc, cap, videos = released
    with pytest.raises(FileNotFoundError, match="not a captioner run"):
        DenseCaptioner.load(enc, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not an encoder export"):
        DenseCaptioner.load(str(tmp_path), cap)
    with pytest.raises(ValueError, match="distinct file names"):
        captioner([str(videos / "clip_a.mp4"), str(tmp_path / "clip_a.mp4")])


def test_launch_help_lists_stages_and_configs():
    import subprocess
    import sys

    from data_prep.orchestration.config_files import REPO_ROOT

    out = subprocess.run([sys.executable, "launch.py", "--help"], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=120)
    assert "Stages" in out.stdout, out.stderr  # (absl exits 1 after --help)
    for stage in registry.STAGES:
        assert stage in out.stdout
    assert "configs/caption_video.py" in out.stdout
    assert "configs/captioner/activitynet.py" in out.stdout
    assert "configs/common.py" not in out.stdout  # helper modules are not launchable
