"""R(2+1)D backbone and SA-TSP heads: layout, parameter counts, BN semantics, dtypes."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sa_tsp_jax.models.batch_norm import TorchBatchNorm
from sa_tsp_jax.models.heads import SATSPModel
from sa_tsp_jax.models.r2plus1d import make_backbone, midplanes


def _count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _abstract_params(variant, rule, num_actions=400):
    model = SATSPModel(make_backbone(variant, rule), num_actions=num_actions, num_regions=0)
    clips = jax.ShapeDtypeStruct((1, 16, 112, 112, 3), jnp.float32)
    return jax.eval_shape(lambda x: model.init(jax.random.key(0), x), clips)


def _independent_count(stage_sizes, rule, fc=400):
    """Parameter count of the torchvision layout, by arithmetic (convs, BN scale+bias, fc)."""
    mid = lambda i, o: (i * o * 27) // (9 * i + 3 * o)
    n = 3 * 45 * 49 + 2 * 45 + 45 * 64 * 3 + 2 * 64
    cin = 64
    for stage, (blocks, width) in enumerate(zip(stage_sizes, (64, 128, 256, 512))):
        for b in range(blocks):
            m1 = mid(cin, width)
            m2 = m1 if rule == "torchvision" else mid(width, width)
            n += cin * m1 * 9 + 2 * m1 + m1 * width * 3 + 2 * width  # conv1 + bn1
            n += width * m2 * 9 + 2 * m2 + m2 * width * 3 + 2 * width  # conv2 + bn2
            if stage > 0 and b == 0:
                n += cin * width + 2 * width
            cin = width
    return n + 512 * fc + fc


def test_r2plus1d_18_torchvision_count_is_exact():
    shapes = _abstract_params("r2plus1d_18", "torchvision")
    assert _count(shapes["params"]) == 31_505_325
    assert _independent_count((2, 2, 2, 2), "torchvision") == 31_505_325


@pytest.mark.parametrize("rule", ["tsp", "torchvision"])
def test_r2plus1d_34_count(rule):
    shapes = _abstract_params("r2plus1d_34", rule)
    assert _count(shapes["params"]) == _independent_count((3, 4, 6, 3), rule)
    backbone = _count(shapes["params"]["backbone"])
    if rule == "tsp":
        assert backbone == 63_491_975  # docs/reference.md: ~63.5M
    # batch_stats: mean + var per BN channel = as many as BN scale + bias.
    bn_params = sum(int(np.prod(x.shape)) for p, x in
                    jax.tree_util.tree_leaves_with_path(shapes["params"])
                    if p[-1].key in ("scale", "bias") and "head" not in str(p[0]))
    assert _count(shapes["batch_stats"]) == bn_params


def test_midplane_rules_differ_only_in_first_blocks():
    tsp = _abstract_params("r2plus1d_18", "tsp")["params"]["backbone"]
    tv = _abstract_params("r2plus1d_18", "torchvision")["params"]["backbone"]
    assert midplanes(64, 128) == 230 and midplanes(128, 128) == 288
    assert tsp["layer2_0"]["conv1"]["spatial"]["kernel"].shape == (1, 3, 3, 64, 230)
    assert tsp["layer2_0"]["conv2"]["spatial"]["kernel"].shape == (1, 3, 3, 128, 288)
    assert tv["layer2_0"]["conv2"]["spatial"]["kernel"].shape == (1, 3, 3, 128, 230)
    assert tsp["layer2_0"]["conv2"]["temporal"]["kernel"].shape == (3, 1, 1, 288, 128)
    assert tsp["layer2_0"]["downsample"]["kernel"].shape == (1, 1, 1, 64, 128)
    assert tsp["stem_spatial"]["kernel"].shape == (1, 7, 7, 3, 45)
    assert tsp["stem_temporal"]["kernel"].shape == (3, 1, 1, 45, 64)
    for name in ("layer1_1", "layer3_1", "layer4_1"):
        assert (tsp[name]["conv1"]["spatial"]["kernel"].shape
                == tv[name]["conv1"]["spatial"]["kernel"].shape)


@pytest.fixture(scope="module")
def small_model():
    model = SATSPModel(make_backbone("small"), num_actions=5, num_concepts=7, use_gvf=True)
    clips = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4, 16, 16, 3)), jnp.float32)
    gvf = jnp.ones((2, 64), jnp.float32)
    variables = jax.jit(model.init)(jax.random.key(0, impl="rbg"), clips, gvf)
    return model, variables, clips, gvf


def test_small_forward_shapes_and_init(small_model):
    model, variables, clips, gvf = small_model
    out = jax.jit(model.apply)(variables, clips, gvf)
    assert out["features"].shape == (2, 64) and out["features"].dtype == jnp.float32
    assert out["action_logits"].shape == (2, 5)
    assert out["region_logits"].shape == (2, 2)
    assert out["concept_logits"].shape == (2, 7)
    params = variables["params"]
    assert params["region_head"]["kernel"].shape == (128, 2)
    # Head init N(0, 0.01), zero bias; BN scale 1.
    k = np.asarray(params["concept_head"]["kernel"])
    assert 0.005 < k.std() < 0.015
    assert np.all(np.asarray(params["action_head"]["bias"]) == 0)
    assert np.all(np.asarray(params["backbone"]["stem_spatial_bn"]["scale"]) == 1)
    # Kaiming fan_out: std = sqrt(2 / (out * receptive field)).
    w = np.asarray(params["backbone"]["layer3_0"]["conv1"]["spatial"]["kernel"])
    expected = np.sqrt(2.0 / (w.shape[-1] * 9))
    assert abs(w.std() / expected - 1) < 0.1


def test_gvf_switch_and_missing_gvf(small_model):
    _, _, clips, _ = small_model
    model = SATSPModel(make_backbone("small"), num_actions=5, num_concepts=0, use_gvf=False)
    variables = jax.eval_shape(model.init, jax.random.key(1), clips)
    assert variables["params"]["region_head"]["kernel"].shape == (64, 2)
    assert "concept_head" not in variables["params"]
    with pytest.raises(ValueError, match="global video feature"):
        jax.eval_shape(SATSPModel(make_backbone("small"), num_actions=5).init,
                       jax.random.key(1), clips)


def test_bfloat16_compute_keeps_float32_params(small_model):
    model, variables, clips, gvf = small_model
    bf = SATSPModel(make_backbone("small", dtype=jnp.bfloat16), num_actions=5, num_concepts=7)
    out32 = jax.jit(model.apply)(variables, clips, gvf)["features"]
    out16 = jax.jit(bf.apply)(variables, clips, gvf)["features"]
    assert out16.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(out16), np.asarray(out32), rtol=0.1, atol=0.05)
    shapes = jax.eval_shape(bf.init, jax.random.key(0), clips, gvf)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(shapes))


def test_train_mode_updates_batch_stats_with_torch_momentum():
    x = np.random.default_rng(1).normal(2.0, 3.0, size=(4, 2, 3, 3, 5)).astype(np.float32)
    bn = TorchBatchNorm()
    variables = bn.init(jax.random.key(0), x, train=True)
    y, updates = bn.apply(variables, x, train=True, mutable=["batch_stats"])
    flat = x.reshape(-1, 5).astype(np.float64)
    mean, var = flat.mean(0), flat.var(0)
    np.testing.assert_allclose(updates["batch_stats"]["mean"], 0.9 * mean, rtol=1e-5)
    np.testing.assert_allclose(updates["batch_stats"]["var"],
                               0.1 + 0.9 * flat.var(0, ddof=1), rtol=1e-5)
    np.testing.assert_allclose(y, ((x - mean) / np.sqrt(var + 1e-3)).astype(np.float32),
                               rtol=1e-4, atol=1e-4)
    # Eval mode normalises with the running statistics.
    y_eval = bn.apply({"params": variables["params"], **updates}, x, train=False)
    ref = (x - 0.9 * mean) / np.sqrt(0.1 + 0.9 * flat.var(0, ddof=1) + 1e-3)
    np.testing.assert_allclose(y_eval, ref, rtol=1e-4, atol=1e-4)
