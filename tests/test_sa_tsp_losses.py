"""Asymmetric Loss and the pretraining objective against hand-computed values."""
import math

import jax
import jax.numpy as jnp
import numpy as np

from sa_tsp_jax.losses.asymmetric_loss import asymmetric_loss
from sa_tsp_jax.losses.pretrain_loss import (
    PretrainLossConfig,
    cross_entropy_ignore,
    pretrain_loss,
)

LOGITS = [[2.0, -1.0, -4.0], [0.0, 3.0, 0.5]]
TARGETS = [[1, 0, 0], [0, 1, 1]]


def _sig(x):
    return 1.0 / (1.0 + math.exp(-x))


def _hand_asl(gn=4.0, gp=1.0, m=0.05):
    """Elementwise loss and d loss / d logit (focal weight held constant), scalar math."""
    total, grads = 0.0, []
    for row_x, row_y in zip(LOGITS, TARGETS):
        g_row = []
        for x, y in zip(row_x, row_y):
            p = _sig(x)
            if y == 1:
                w = (1 - p) ** gp
                total += -w * math.log(p)
                g_row.append(-w * (1 - p))  # d/dx log p = 1 - p
            else:
                pn = min(1 - p + m, 1.0)
                w = (1 - pn) ** gn
                total += -w * math.log(pn)
                # d/dx log(1 - p + m) = -p(1-p)/(1-p+m); zero where the clamp is active.
                g_row.append(w * p * (1 - p) / pn if 1 - p + m < 1 else 0.0)
        grads.append(g_row)
    return total, np.array(grads)


def test_asl_value_and_gradient_match_hand_computation():
    x = jnp.array(LOGITS)
    y = jnp.array(TARGETS)
    want, want_grad = _hand_asl()
    got, grad = jax.value_and_grad(asymmetric_loss)(x, y)
    np.testing.assert_allclose(float(got), want, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(grad), want_grad, rtol=1e-5, atol=1e-8)
    # The clipped easy negative (p = sigmoid(-4) < 0.05) contributes neither loss nor gradient.
    assert grad[0, 2] == 0.0


def test_asl_special_cases():
    x = jnp.array(LOGITS)
    y = jnp.array(TARGETS)
    # gamma = 0, clip = 0: plain binary cross-entropy summed.
    bce = -sum(
        yy * math.log(_sig(xx)) + (1 - yy) * math.log(1 - _sig(xx))
        for rx, ry in zip(LOGITS, TARGETS) for xx, yy in zip(rx, ry)
    )
    got = asymmetric_loss(x, y, gamma_neg=0.0, gamma_pos=0.0, clip=0.0)
    np.testing.assert_allclose(float(got), bce, rtol=1e-6)
    want, _ = _hand_asl(gn=2.0, gp=0.0, m=0.1)
    np.testing.assert_allclose(float(asymmetric_loss(x, y, 2.0, 0.0, 0.1)), want, rtol=1e-6)
    # Per-example weights zero out a whole row.
    w = jnp.array([1.0, 0.0])
    row0 = float(asymmetric_loss(x[:1], y[:1]))
    np.testing.assert_allclose(float(asymmetric_loss(x, y, weights=w)), row0, rtol=1e-6)


def test_asl_gradient_through_focal_weight_when_enabled():
    x = jnp.array(LOGITS)
    y = jnp.array(TARGETS)
    f = lambda v: asymmetric_loss(v, y, stop_gradient_focal_weight=False)
    g = np.asarray(jax.grad(f)(x))
    # Central finite differences in float64 arithmetic of the hand formula.
    def scalar(xv, yv):
        p = _sig(xv)
        if yv == 1:
            return -((1 - p) ** 1.0) * math.log(p)
        pn = min(1 - p + 0.05, 1.0)
        return -((1 - pn) ** 4.0) * math.log(pn)
    h = 1e-4
    for i in range(2):
        for j in range(3):
            xv, yv = LOGITS[i][j], TARGETS[i][j]
            fd = (scalar(xv + h, yv) - scalar(xv - h, yv)) / (2 * h)
            np.testing.assert_allclose(g[i, j], fd, rtol=2e-3, atol=1e-6)


def test_asl_focal_weight_gradient_is_finite_at_saturation():
    """gamma_pos = 0 and a positive whose probability is exactly 1.0 in float32: PyTorch's
    pow gradient is 0 where the exponent is 0, so the whole gradient is 0 (1 - p = 0 and the
    clipped negative is constant); a plain jnp.power gives NaN there."""
    x = jnp.array([[30.0, -30.0]])
    y = jnp.array([[1.0, 0.0]])
    for stop in (False, True):
        f = lambda v, stop=stop: asymmetric_loss(v, y, gamma_neg=4.0, gamma_pos=0.0, clip=0.05,
                                                 stop_gradient_focal_weight=stop)
        assert float(f(x)) == 0.0
        np.testing.assert_array_equal(np.asarray(jax.grad(f)(x)), 0.0)


def test_cross_entropy_ignores_background():
    logits = jnp.array([[1.0, 2.0, 0.5], [0.3, 0.1, 3.0], [5.0, 0.0, 0.0]])
    labels = jnp.array([1, -1, 0])
    loss, count = cross_entropy_ignore(logits, labels)

    def nll(row, k):
        return -(row[k] - math.log(sum(math.exp(v) for v in row)))

    want = (nll([1.0, 2.0, 0.5], 1) + nll([5.0, 0.0, 0.0], 0)) / 2
    np.testing.assert_allclose(float(loss), want, rtol=1e-6)
    assert float(count) == 2
    all_bg, _ = cross_entropy_ignore(logits, jnp.array([-1, -1, -1]))
    assert float(all_bg) == 0.0


def test_pretrain_loss_weights_and_switches():
    rng = np.random.default_rng(0)
    outputs = {
        "action_logits": jnp.asarray(rng.normal(size=(4, 6)), jnp.float32),
        "region_logits": jnp.asarray(rng.normal(size=(4, 2)), jnp.float32),
        "concept_logits": jnp.asarray(rng.normal(size=(4, 5)), jnp.float32),
    }
    batch = {
        "action_label": jnp.array([2, -1, 5, -1]),
        "region_label": jnp.array([0, 1, 0, 1]),
        "concepts": jnp.asarray(rng.integers(0, 2, size=(4, 5)), jnp.float32),
    }
    cfg = PretrainLossConfig(alpha=0.5, beta=2.0)
    total, terms = pretrain_loss(outputs, batch, cfg)
    want = terms["loss_action"] + 0.5 * terms["loss_temporal"] + 2.0 * terms["loss_semantic"]
    np.testing.assert_allclose(float(total), float(want), rtol=1e-6)
    np.testing.assert_allclose(
        float(terms["loss_semantic"]),
        float(asymmetric_loss(outputs["concept_logits"], batch["concepts"])), rtol=1e-6)
    # TSP (beta = 0) needs no concept head; action-only needs no region head either.
    no_concepts = {k: v for k, v in outputs.items() if k != "concept_logits"}
    tsp_total, tsp_terms = pretrain_loss(no_concepts, batch, PretrainLossConfig(beta=0.0))
    assert float(tsp_terms["loss_semantic"]) == 0.0
    np.testing.assert_allclose(
        float(tsp_total), float(terms["loss_action"] + terms["loss_temporal"]), rtol=1e-6)
    only_action = {"action_logits": outputs["action_logits"]}
    a_total, _ = pretrain_loss(only_action, batch, PretrainLossConfig(alpha=0.0, beta=0.0))
    np.testing.assert_allclose(float(a_total), float(terms["loss_action"]), rtol=1e-6)
    # A padded clip (valid = 0) changes nothing.
    padded = {k: jnp.concatenate([v, v[:1]]) for k, v in outputs.items()}
    pbatch = {k: jnp.concatenate([v, v[:1]]) for k, v in batch.items()}
    pbatch["valid"] = jnp.array([1, 1, 1, 1, 0])
    p_total, _ = pretrain_loss(padded, pbatch, cfg)
    np.testing.assert_allclose(float(p_total), float(total), rtol=1e-6)
