"""PyTorch weight import: real key names, random values, parity with a numpy reference.

The reference below re-implements the torchvision VideoResNet forward pass (eval mode) in
numpy directly on the PyTorch layout (N, C, T, H, W) and PyTorch weight shapes, sharing no
code with the Flax model or the importer.
"""
import jax
import numpy as np
import pytest

from sa_tsp_jax import export, import_torch
from sa_tsp_jax.models.heads import SATSPModel
from sa_tsp_jax.models.r2plus1d import R2Plus1D

STAGES, WIDTHS, STEM = (1, 2, 1, 1), (8, 16, 24, 32), 6


def _mid(i, o):
    return (i * o * 27) // (9 * i + 3 * o)


def _make_state_dict(rng, prefix="features.", rule="tsp", fc=("fc1", 7), fc2=True):
    sd = {}

    def conv(name, shape):
        fan_in = int(np.prod(shape[1:]))
        sd[name] = rng.normal(0, np.sqrt(2.0 / fan_in), size=shape).astype(np.float32)

    def bn(name, c):
        sd[f"{name}.weight"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        sd[f"{name}.bias"] = rng.normal(0, 0.1, c).astype(np.float32)
        sd[f"{name}.running_mean"] = rng.normal(0, 0.1, c).astype(np.float32)
        sd[f"{name}.running_var"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        sd[f"{name}.num_batches_tracked"] = np.array(7)

    p = prefix
    conv(f"{p}stem.0.weight", (STEM, 3, 1, 7, 7))
    bn(f"{p}stem.1", STEM)
    conv(f"{p}stem.3.weight", (WIDTHS[0], STEM, 3, 1, 1))
    bn(f"{p}stem.4", WIDTHS[0])
    cin = WIDTHS[0]
    for li, (blocks, w) in enumerate(zip(STAGES, WIDTHS), start=1):
        for b in range(blocks):
            m1 = _mid(cin, w)
            m2 = m1 if rule == "torchvision" else _mid(w, w)
            for k, (i, m) in ((1, (cin, m1)), (2, (w, m2))):
                base = f"{p}layer{li}.{b}.conv{k}"
                conv(f"{base}.0.0.weight", (m, i, 1, 3, 3))
                bn(f"{base}.0.1", m)
                conv(f"{base}.0.3.weight", (w, m, 3, 1, 1))
                bn(f"{base}.1", w)
            if li > 1 and b == 0:
                conv(f"{p}layer{li}.0.downsample.0.weight", (w, cin, 1, 1, 1))
                bn(f"{p}layer{li}.0.downsample.1", w)
            cin = w
    name, n = fc
    sd[f"{name}.weight"] = rng.normal(0, 0.1, (n, WIDTHS[-1])).astype(np.float32)
    sd[f"{name}.bias"] = rng.normal(0, 0.1, n).astype(np.float32)
    if fc2:
        sd["fc2.weight"] = rng.normal(0, 0.1, (2, 2 * WIDTHS[-1])).astype(np.float32)
        sd["fc2.bias"] = rng.normal(0, 0.1, 2).astype(np.float32)
    return sd


# ---- independent numpy reference (PyTorch semantics) ----
def _np_conv3d(x, w, stride, pad):
    """x (N,C,T,H,W), w (O,C,kt,kh,kw), symmetric zero padding, no bias."""
    x = np.pad(x, ((0, 0), (0, 0), (pad[0],) * 2, (pad[1],) * 2, (pad[2],) * 2))
    _, _, kt, kh, kw = w.shape
    n, _, t, h, wd = x.shape
    to, ho, wo = ((t - kt) // stride[0] + 1, (h - kh) // stride[1] + 1,
                  (wd - kw) // stride[2] + 1)
    out = np.zeros((n, w.shape[0], to, ho, wo), np.float64)
    for a in range(kt):
        for b in range(kh):
            for c in range(kw):
                patch = x[:, :, a:a + stride[0] * to:stride[0], b:b + stride[1] * ho:stride[1],
                          c:c + stride[2] * wo:stride[2]]
                out += np.einsum("oi,nithw->nothw", w[:, :, a, b, c], patch)
    return out


def _np_bn(x, sd, name, eps=1e-3):
    sh = (1, -1, 1, 1, 1)
    return ((x - sd[f"{name}.running_mean"].reshape(sh))
            / np.sqrt(sd[f"{name}.running_var"].reshape(sh) + eps)
            * sd[f"{name}.weight"].reshape(sh) + sd[f"{name}.bias"].reshape(sh))


def _np_features(sd, clips_ncthw, p="features."):
    relu = lambda v: np.maximum(v, 0)
    x = clips_ncthw.astype(np.float64)
    x = relu(_np_bn(_np_conv3d(x, sd[f"{p}stem.0.weight"], (1, 2, 2), (0, 3, 3)), sd,
                    f"{p}stem.1"))
    x = relu(_np_bn(_np_conv3d(x, sd[f"{p}stem.3.weight"], (1, 1, 1), (1, 0, 0)), sd,
                    f"{p}stem.4"))
    for li, blocks in enumerate(STAGES, start=1):
        for b in range(blocks):
            s = 2 if (li > 1 and b == 0) else 1
            base = f"{p}layer{li}.{b}"
            y = x
            for k, stride in ((1, s), (2, 1)):
                c = f"{base}.conv{k}"
                y = _np_conv3d(y, sd[f"{c}.0.0.weight"], (1, stride, stride), (0, 1, 1))
                y = relu(_np_bn(y, sd, f"{c}.0.1"))
                y = _np_conv3d(y, sd[f"{c}.0.3.weight"], (stride, 1, 1), (1, 0, 0))
                y = _np_bn(y, sd, f"{c}.1")
                if k == 1:
                    y = relu(y)
            short = x
            if f"{base}.downsample.0.weight" in sd:
                short = _np_bn(_np_conv3d(x, sd[f"{base}.downsample.0.weight"], (2, 2, 2),
                                          (0, 0, 0)), sd, f"{base}.downsample.1")
            x = relu(y + short)
    return x.mean(axis=(2, 3, 4))


@pytest.fixture(scope="module")
def clips():
    return np.random.default_rng(1).normal(size=(2, 8, 24, 24, 3)).astype(np.float32)


@pytest.mark.parametrize("rule,prefix", [("tsp", "features."), ("torchvision", "")])
def test_imported_weights_match_numpy_reference(clips, rule, prefix):
    sd = _make_state_dict(np.random.default_rng(0), prefix=prefix, rule=rule)
    variables, cfg, unused = import_torch.convert_state_dict(sd)
    assert unused == []
    assert cfg == dict(stage_sizes=STAGES, widths=WIDTHS, stem_width=STEM, midplane_rule=rule)
    model = SATSPModel(R2Plus1D(**cfg), num_actions=7, use_gvf=True)
    gvf = np.random.default_rng(2).normal(size=(2, WIDTHS[-1])).astype(np.float32)
    target = jax.eval_shape(model.init, jax.random.key(0), clips, gvf)
    merged, skipped = import_torch.merge_into(target, variables)
    assert skipped == []
    out = jax.jit(model.apply)(merged, clips, gvf)
    ref = _np_features(sd, clips.transpose(0, 4, 1, 2, 3), p=prefix)
    np.testing.assert_allclose(np.asarray(out["features"]), ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(out["action_logits"]),
                               ref @ sd["fc1.weight"].T.astype(np.float64) + sd["fc1.bias"],
                               rtol=1e-4, atol=1e-4)
    region_ref = np.concatenate([ref, gvf], -1) @ sd["fc2.weight"].T + sd["fc2.bias"]
    np.testing.assert_allclose(np.asarray(out["region_logits"]), region_ref, rtol=1e-4,
                               atol=1e-4)


def test_mismatched_head_keeps_init_and_roundtrip(tmp_path, clips):
    # A TAC-style checkpoint: `fc` with 11 classes, no fc2, DDP `module.` prefix.
    sd = _make_state_dict(np.random.default_rng(3), prefix="module.features.",
                          fc=("fc", 11), fc2=False)
    variables, cfg, _ = import_torch.convert_state_dict(sd)
    model = SATSPModel(R2Plus1D(**cfg), num_actions=7, num_concepts=3, use_gvf=False)
    target = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype),
                          jax.eval_shape(model.init, jax.random.key(0), clips))
    merged, skipped = import_torch.merge_into(target, variables)
    assert any(s.startswith("params/action_head/kernel: shape") for s in skipped)
    assert any(s.startswith("params/concept_head/kernel: not in") for s in skipped)
    np.testing.assert_array_equal(
        merged["params"]["backbone"]["stem_spatial"]["kernel"],
        sd["module.features.stem.0.weight"].transpose(2, 3, 4, 1, 0))
    export.save_variables(str(tmp_path / "out"), variables, cfg)
    loaded, cfg2 = export.load_variables(str(tmp_path / "out"))
    assert cfg2 == cfg
    jax.tree.map(np.testing.assert_array_equal, loaded, variables)
    assert export.load_geometry(str(tmp_path / "out")) is None
    # The input geometry travels beside the backbone config (and stays out of it).
    geometry = export.InputGeometry(clip_length=8, fps=30.0, resize=(64, 80), crop=56,
                                    mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    export.save_variables(str(tmp_path / "out"), variables, cfg, geometry)
    assert export.load_variables(str(tmp_path / "out"))[1] == cfg
    assert export.load_geometry(str(tmp_path / "out")) == geometry
    # A backbone shape mismatch is an error, not a silent skip.
    bad = SATSPModel(R2Plus1D(**{**cfg, "stem_width": STEM + 1}), use_gvf=False)
    with pytest.raises(ValueError, match="stem_spatial"):
        import_torch.merge_into(jax.eval_shape(bad.init, jax.random.key(0), clips), variables)


def _torch_r2plus1d(torch, rule="tsp"):
    """The TSP/torchvision module tree in plain torch.nn (real key names), TSP BN settings."""
    nn = torch.nn
    bn = lambda c: nn.BatchNorm3d(c, eps=1e-3, momentum=0.9)

    def conv2plus1d(i, o, m, s):
        return nn.Sequential(nn.Conv3d(i, m, (1, 3, 3), (1, s, s), (0, 1, 1), bias=False), bn(m),
                             nn.ReLU(), nn.Conv3d(m, o, (3, 1, 1), (s, 1, 1), (1, 0, 0),
                                                  bias=False))

    class Block(nn.Module):
        def __init__(self, i, o, s):
            super().__init__()
            m1 = _mid(i, o)
            m2 = m1 if rule == "torchvision" else _mid(o, o)
            self.conv1 = nn.Sequential(conv2plus1d(i, o, m1, s), bn(o), nn.ReLU())
            self.conv2 = nn.Sequential(conv2plus1d(o, o, m2, 1), bn(o))
            self.downsample = (nn.Sequential(nn.Conv3d(i, o, 1, s, bias=False), bn(o))
                               if s != 1 or i != o else None)

        def forward(self, x):
            short = x if self.downsample is None else self.downsample(x)
            return torch.relu(self.conv2(self.conv1(x)) + short)

    class Features(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(
                nn.Conv3d(3, STEM, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False), bn(STEM),
                nn.ReLU(), nn.Conv3d(STEM, WIDTHS[0], (3, 1, 1), 1, (1, 0, 0), bias=False),
                bn(WIDTHS[0]), nn.ReLU())
            cin = WIDTHS[0]
            for li, (blocks, w) in enumerate(zip(STAGES, WIDTHS), start=1):
                layer = []
                for b in range(blocks):
                    layer.append(Block(cin, w, 2 if (li > 1 and b == 0) else 1))
                    cin = w
                setattr(self, f"layer{li}", nn.Sequential(*layer))

        def forward(self, x):
            x = self.stem(x)
            for li in range(1, 5):
                x = getattr(self, f"layer{li}")(x)
            return x.mean(dim=(2, 3, 4))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = Features()

        def forward(self, x):
            return self.features(x)

    torch.manual_seed(0)
    net = Net()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
    return net


@pytest.mark.parametrize("rule", ["tsp", "torchvision"])
def test_torch_parity_eval_and_train_mode(clips, rule):
    """Runs only where torch is importable (not a project requirement)."""
    torch = pytest.importorskip("torch")
    net = _torch_r2plus1d(torch, rule)
    sd = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
    variables, cfg, unused = import_torch.convert_state_dict(sd)
    assert unused == [] and cfg["midplane_rule"] == rule
    model = R2Plus1D(**cfg)
    v = {"params": variables["params"]["backbone"],
         "batch_stats": variables["batch_stats"]["backbone"]}
    x_torch = torch.from_numpy(clips.transpose(0, 4, 1, 2, 3).copy())
    with torch.no_grad():
        net.eval()
        want_eval = net(x_torch).numpy()
        net.train()
        want_train = net(x_torch).numpy()  # also updates the running statistics
    got_eval = jax.jit(lambda v, x: model.apply(v, x, train=False))(v, clips)
    got_train, updates = jax.jit(
        lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(v, clips)
    np.testing.assert_allclose(np.asarray(got_eval), want_eval, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(got_train), want_train, rtol=1e-4, atol=1e-4)
    new_sd = {k: t.numpy() for k, t in net.state_dict().items()}
    new_vars, _, _ = import_torch.convert_state_dict(new_sd)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                 jax.device_get(updates["batch_stats"]), new_vars["batch_stats"]["backbone"])
