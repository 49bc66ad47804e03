"""SCST on a tiny real PDVC captioner with given proposals: tiling, sampling, one update."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from captioner_jax.models.pdvc import PDVC
from captioner_jax.scst.pdvc_decoder import pdvc_build_decoder, sample_validity
from captioner_jax.scst.sampler import make_sampler, mask_through_eos
from captioner_jax.scst.update import init_state, make_optimizer, make_update_step
from data_prep.infra.tree_names import key_path_name

B, T, C, E, K, V, L = 2, 16, 8, 3, 3, 11, 6


def _setup(caption_head):
    # One encoder/decoder layer and two levels keep XLA compile time low on CPU.
    model = PDVC(vocab_size=V, hidden_dim=32, num_heads=4, ffn_dim=32, num_queries=4,
                 enc_layers=1, dec_layers=1, num_levels=2, cap_levels=2,
                 rnn_size=32, word_dim=16, att_hid=16, caption_head=caption_head)
    rng = np.random.default_rng(0)
    inputs = {
        "feats": jnp.asarray(rng.normal(size=(B, T, C)), jnp.float32),
        "feat_valid": jnp.asarray(np.arange(T)[None] < np.array([[T], [12]])),
        "duration": jnp.asarray([20.0, 50.0]),
        "gt_boxes": jnp.asarray(rng.uniform(0.2, 0.6, size=(B, E, 2)), jnp.float32),
        "gt_valid": jnp.asarray([[True, True, True], [True, True, False]]),
    }
    variables = jax.jit(lambda k: model.init(
        {"params": k}, inputs["feats"], inputs["feat_valid"], inputs["duration"],
        method=PDVC.init_all))(jax.random.key(0))
    params = variables["params"]
    # Sharpen the word logits so greedy paths are far from ties.
    params = jax.tree_util.tree_map_with_path(
        lambda p, x: x * 30.0 if "logit" in key_path_name(p) else x, params)
    build = pdvc_build_decoder(model)
    sampler = make_sampler(build, num_samples=K, max_len=L, temperature=1e-5)
    return model, params, inputs, build, sampler(params, inputs, jax.random.key(0))


@pytest.fixture(scope="module")
def setup():
    """LSTM-DSA head: its deformable sampler reads the tiled per-event references."""
    return _setup("lstm_dsa")


@pytest.fixture(scope="module")
def setup_light():
    """Light head: the same parameter tree layout, far cheaper to differentiate (compile)."""
    return _setup("light")


def test_tiled_low_temperature_samples_equal_greedy_per_event(setup):
    _, _, inputs, _, out = setup
    greedy = np.asarray(out["greedy_tokens"])  # [B*E, L]
    samples = np.asarray(out["sample_tokens"]).reshape(B * E, K, L)
    assert greedy.shape == (B * E, L)
    for k in range(K):
        np.testing.assert_array_equal(samples[:, k], greedy)
    # Events really differ (otherwise the check above could not catch a wrong tiling order).
    assert len({tuple(r) for r in greedy}) > 1
    np.testing.assert_array_equal(
        sample_validity(inputs["gt_valid"], K).reshape(B, E, K)[1, 2], [False] * K)


def test_caption_head_only_update(setup_light):
    model, params, inputs, _, out = setup_light
    build = pdvc_build_decoder(model, backbone_grad=False)
    valid = sample_validity(inputs["gt_valid"], K)
    mask = mask_through_eos(out["sample_tokens"]) * valid[:, None]
    adv = jnp.asarray(np.random.default_rng(1).normal(size=B * E * K), jnp.float32)
    opt = make_optimizer(params, learning_rate=1e-3, trainable=("caption_cell",))
    update = make_update_step(build, opt, num_samples=K)
    state = init_state(jax.tree.map(jnp.copy, params), opt)
    state, metrics = update(state, inputs, out["sample_tokens"], mask, adv)
    assert np.isfinite(float(metrics["loss"])) and float(metrics["grad_norm"]) > 0
    changed = jax.tree_util.tree_map_with_path(
        lambda p, a, b: ("caption_cell" in key_path_name(p), bool(np.any(a != b))),
        state["params"], params)
    flags = jax.tree.leaves(changed, is_leaf=lambda x: isinstance(x, tuple))
    assert any(c for is_cap, c in flags if is_cap)
    assert not any(c for is_cap, c in flags if not is_cap)
