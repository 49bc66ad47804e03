"""captioner_jax.loop_gradients: the hand-formed weight gradients equal plain autodiff.

Each check differentiates the same forward computation twice: through the module's custom
backward passes and through a plain JAX definition (log_softmax + gather over every
position; a `lax.scan` with the weights read inside), on random inputs whose real length
ends inside a block / segment, at a block / segment boundary, and covers everything.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from captioner_jax import loop_gradients
from captioner_jax.models.base_encoder import StridedConv1d

NB, C, R, V = 4, 8, 6, 11


def _reference_logprobs(h_blocks, targets, count, w, b):
    """log_softmax(h w + b)[target] for every position, zeroed for blocks >= count."""
    logp = jax.nn.log_softmax(h_blocks @ w + b, axis=-1)
    picked = jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    block_real = (jnp.arange(NB) * C < count)[:, None]
    return jnp.where(block_real, picked, 0.0)


@pytest.mark.parametrize("count", [0, 5, 8, 13, 32])
def test_target_logprobs_value_and_gradients(count):
    k = jax.random.split(jax.random.PRNGKey(0), 5)
    h = jax.random.normal(k[0], (NB, C, R))
    targets = jax.random.randint(k[1], (NB, C), 0, V)
    w = jax.random.normal(k[2], (R, V))
    b = jax.random.normal(k[3], (V,))
    weights = jax.random.normal(k[4], (NB, C))  # a loss that weighs every position
    count = jnp.int32(count)

    def loss(fn, h, w, b):
        out = fn(h, targets, count, w, b)
        return jnp.sum(out * weights), out

    (val, out), grads = jax.jit(jax.value_and_grad(
        lambda h, w, b: loss(loop_gradients.target_logprobs, h, w, b), (0, 1, 2),
        has_aux=True))(h, w, b)
    (val_ref, out_ref), grads_ref = jax.value_and_grad(
        lambda h, w, b: loss(_reference_logprobs, h, w, b), (0, 1, 2), has_aux=True)(h, w, b)
    np.testing.assert_allclose(out, out_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(val, val_ref, rtol=1e-5, atol=1e-6)
    for g, g_ref in zip(grads, grads_ref):
        np.testing.assert_allclose(g, g_ref, rtol=1e-5, atol=1e-5)
    if int(count) == 0:
        assert all(float(jnp.abs(g).max()) == 0 for g in grads)
    else:
        assert float(jnp.abs(grads[1]).max()) > 0


T, B, K, N1, N2 = 19, 3, 5, 7, 4  # 19 steps: segments of 8, 8, 3


def _step(linear, consts, carry, x):
    """A small gated RNN: h' = tanh(lin_h(h) + x + u), y = h' * sigmoid(lin_y(h'))."""
    h = jnp.tanh(linear("w_h", carry) + x + consts["u"])
    gate = jax.nn.sigmoid(linear("w_y", h) @ consts["p"])
    return h, h * gate


def _reference_recurrence(weights, consts, carry, xs, needed):
    def body(carry, inputs):
        t, x = inputs

        def linear(name, v):
            return v @ weights[name]

        new, y = _step(linear, consts, carry, x)
        live = t < needed
        return jnp.where(live, new, carry), jnp.where(live, y, 0.0)

    return jax.lax.scan(body, carry, (jnp.arange(T), xs))[1]


@pytest.mark.parametrize("needed", [1, 8, 9, 16, 19])
def test_recurrence_value_and_gradients(needed):
    k = jax.random.split(jax.random.PRNGKey(1), 7)
    weights = {"w_h": 0.5 * jax.random.normal(k[0], (K, K)),
               "w_y": jax.random.normal(k[1], (K, N2))}
    consts = {"u": jax.random.normal(k[2], (K,)), "p": jax.random.normal(k[3], (N2, K))}
    carry = jax.random.normal(k[4], (B, K))
    xs = jax.random.normal(k[5], (T, B, K))
    cot = jax.random.normal(k[6], (T, B, K))
    needed = jnp.int32(needed)
    policy = jax.checkpoint_policies.dots_with_no_batch_dims_saveable

    def loss(fn, *args):
        ys = fn(*args)
        return jnp.sum(ys * cot), ys

    args = (weights, consts, carry, xs)
    (val, ys), grads = jax.jit(jax.value_and_grad(lambda *a: loss(
        lambda *b: loop_gradients.recurrence(_step, *b, needed, checkpoint_policy=policy),
        *a), argnums=(0, 1, 2, 3), has_aux=True))(*args)
    (val_ref, ys_ref), grads_ref = jax.value_and_grad(lambda *a: loss(
        lambda *b: _reference_recurrence(*b, needed), *a), argnums=(0, 1, 2, 3),
        has_aux=True)(*args)
    np.testing.assert_allclose(ys, ys_ref, rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(ys)[int(needed):] == 0)
    np.testing.assert_allclose(val, val_ref, rtol=1e-5)
    jax.tree.map(lambda g, r: np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5),
                 grads, grads_ref)
    assert float(jnp.abs(grads[0]["w_h"]).max()) > 0


@pytest.mark.parametrize("needed", [0, 1, 8, 9, 17, 19])
def test_segment_products_value_and_gradients(needed):
    k = jax.random.split(jax.random.PRNGKey(2), 4)
    x = jax.random.normal(k[0], (T, B, K))
    w = jax.random.normal(k[1], (K, N1))
    weights = jax.random.normal(k[2], (T, B, N1))  # a loss that weighs every output

    def reference(x, w, needed):
        live = (jnp.arange(T) // loop_gradients.SEGMENT * loop_gradients.SEGMENT < needed)
        live = live.at[:loop_gradients.SEGMENT].set(True)  # the first segment always runs
        return jnp.where(live[:, None, None], x @ w, 0.0)

    def loss(fn, x, w):
        out = fn(x, w, jnp.int32(needed))
        return jnp.sum(out * weights), out

    (val, out), grads = jax.jit(jax.value_and_grad(
        lambda x, w: loss(loop_gradients.segment_products, x, w), (0, 1), has_aux=True))(x, w)
    (val_ref, out_ref), grads_ref = jax.value_and_grad(
        lambda x, w: loss(reference, x, w), (0, 1), has_aux=True)(x, w)
    np.testing.assert_allclose(out, out_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(val, val_ref, rtol=1e-5, atol=1e-4)
    for g, g_ref in zip(grads, grads_ref):
        np.testing.assert_allclose(g, g_ref, rtol=1e-5, atol=1e-4)
    live_steps = max(loop_gradients.SEGMENT, -(-needed // loop_gradients.SEGMENT)
                     * loop_gradients.SEGMENT)
    assert float(jnp.abs(out[live_steps:]).max(initial=0.0)) == 0.0
    assert float(jnp.abs(grads[0][live_steps:]).max(initial=0.0)) == 0.0


def test_a_weight_read_twice_in_a_step_is_refused():
    def twice(linear, consts, carry, x):
        return carry, linear("w", carry) + linear("w", carry)

    with pytest.raises(ValueError, match="read twice"):
        loop_gradients.recurrence(twice, {"w": jnp.eye(2)}, {}, jnp.ones((1, 2)),
                                  jnp.ones((3, 1, 2)), jnp.int32(3))


@pytest.mark.parametrize("length", [100, 50, 25, 13])
def test_strided_conv_equals_flax_conv(length):
    """Same parameters (names, shapes, initial values) and outputs as nn.Conv(k3 s2 p1)."""
    x = jax.random.normal(jax.random.PRNGKey(2), (2, length, 16))
    ours = StridedConv1d(24, name="input_proj_1")
    flax_conv = nn.Conv(24, (3,), strides=(2,), padding=((1, 1),),
                        kernel_init=nn.initializers.xavier_uniform(), name="input_proj_1")
    p_ours = ours.init(jax.random.PRNGKey(3), x)
    p_flax = flax_conv.init(jax.random.PRNGKey(3), x)
    jax.tree.map(np.testing.assert_array_equal, p_ours, p_flax)
    params = jax.tree.map(lambda a: a + 0.1, p_flax)  # a non-zero bias
    np.testing.assert_allclose(ours.apply(params, x), flax_conv.apply(params, x),
                               rtol=1e-5, atol=1e-5)
