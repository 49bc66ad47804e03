"""Box/GIoU helpers, the Hungarian matcher (vs brute force) and PDVC's losses."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from captioner_jax import box_ops, losses, matcher


def test_giou_by_hand():
    a = jnp.asarray([[0.0, 0.4], [0.0, 0.2]])
    b = jnp.asarray([[0.2, 0.6], [0.5, 1.0]])
    g = np.asarray(box_ops.generalized_box_iou(a, b))
    # overlap 0.2, union 0.6, hull 0.6
    np.testing.assert_allclose(g[0, 0], 0.2 / (0.6 + 1e-5), rtol=1e-5)
    # disjoint [0, .2] vs [.5, 1]: iou 0, union .7, hull 1
    np.testing.assert_allclose(g[1, 1], -0.3 / (1.0 + 1e-5), rtol=1e-5)
    np.testing.assert_allclose(
        box_ops.paired_generalized_box_iou(a, b), np.diag(g), rtol=1e-6)
    cl = box_ops.xy_to_cl(a)
    np.testing.assert_allclose(cl, [[0.2, 0.4], [0.1, 0.2]], rtol=1e-6)
    np.testing.assert_allclose(box_ops.cl_to_xy(cl), a, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(box_ops.inverse_sigmoid(jax.nn.sigmoid(jnp.asarray(0.3))), 0.3,
                               rtol=1e-5)


def _brute_force(cost):
    n, g = cost.shape
    best = np.inf
    for perm in itertools.permutations(range(n), g):  # gt j -> query perm[j]
        best = min(best, sum(cost[perm[j], j] for j in range(g)))
    return best


def test_hungarian_matches_brute_force():
    rng = np.random.default_rng(0)
    for n, g in [(4, 3), (5, 5), (3, 1), (6, 2)]:
        logits = rng.normal(size=(1, n)).astype(np.float32)
        boxes = rng.uniform(0.1, 0.9, size=(1, n, 2)).astype(np.float32)
        gt = rng.uniform(0.1, 0.9, size=(1, g, 2)).astype(np.float32)
        cost = np.asarray(matcher.matching_cost(logits, boxes, gt))[0]
        # Independent cost: numpy focal + GIoU written out.
        p = 1 / (1 + np.exp(-logits[0]))
        focal = 0.25 * (1 - p) ** 2 * -np.log(p + 1e-8) - 0.75 * p**2 * -np.log(1 - p + 1e-8)
        s1, e1 = boxes[0, :, 0] - boxes[0, :, 1] / 2, boxes[0, :, 0] + boxes[0, :, 1] / 2
        s2, e2 = gt[0, :, 0] - gt[0, :, 1] / 2, gt[0, :, 0] + gt[0, :, 1] / 2
        inter = np.clip(np.minimum(e1[:, None], e2) - np.maximum(s1[:, None], s2), 0, None)
        union = (e1 - s1)[:, None] + (e2 - s2) - inter
        hull = np.maximum(e1[:, None], e2) - np.minimum(s1[:, None], s2)
        giou = inter / (union + 1e-5) - (hull - union) / (hull + 1e-5)
        np.testing.assert_allclose(cost, 2 * focal[:, None] - 4 * giou, rtol=1e-4, atol=1e-5)
        assign = matcher.hungarian_assign_host(cost[None], np.asarray([g]))[0]
        assert sorted(assign[assign >= 0].tolist()) == list(range(g))
        total = sum(cost[q, assign[q]] for q in range(n) if assign[q] >= 0)
        np.testing.assert_allclose(total, _brute_force(cost), rtol=1e-6)


def test_hungarian_in_jit_with_padding():
    cost = jnp.asarray([[[0.0, 5.0, 9.0], [5.0, 0.0, 9.0]], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    valid = jnp.asarray([[True, True, False], [True, False, False]])
    got = jax.jit(matcher.hungarian_assign)(cost, valid)
    np.testing.assert_array_equal(got, [[0, 1], [-1, 0]])
    ident = matcher.identity_assign(3, valid)
    np.testing.assert_array_equal(ident, [[0, 1, -1], [0, -1, -1]])


def test_focal_and_set_losses():
    logits = jnp.asarray([[2.0, -1.0, 0.5]])
    boxes = jnp.asarray([[[0.5, 0.2], [0.3, 0.1], [0.8, 0.2]]])
    assignment = jnp.asarray([[1, -1, 0]])
    gt = jnp.asarray([[[0.7, 0.2], [0.5, 0.4]]])
    gt_valid = jnp.asarray([[True, True]])
    counts = jnp.zeros((1, 11))
    out = losses.set_losses(logits, boxes, counts, assignment, gt, gt_valid)
    x = np.asarray(logits[0], np.float64)
    t = np.asarray([1.0, 0.0, 1.0])
    p = 1 / (1 + np.exp(-x))
    ce = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    pt = p * t + (1 - p) * (1 - t)
    focal = (0.25 * t + 0.75 * (1 - t)) * ce * (1 - pt) ** 2
    np.testing.assert_allclose(out["loss_ce"], focal.sum() / 2, rtol=1e-5)
    np.testing.assert_allclose(out["loss_bbox"], (0.0 + 0.2 + 0.1 + 0.0) / 2, rtol=1e-5)
    # query 0 [0.4,0.6] vs gt1 [0.3,0.7]: iou .2/.4; query 2 [.7,.9] vs gt0 [.6,.8]: .1/.3
    g0 = 0.2 / (0.4 + 1e-5) - 0.0
    g2 = 0.1 / (0.3 + 1e-5) - 0.0
    np.testing.assert_allclose(out["loss_giou"], ((1 - g0) + (1 - g2)) / 2, rtol=1e-4)
    # Counter: zero logits -> BCE log 2 everywhere, weights (1 - rate) and Gaussian coef.
    rate = losses.COUNTER_CLASS_RATE[:11]
    k = np.arange(11)
    mask = np.exp(-((k - 2) ** 2) / 8.0)
    coef = np.where(k == 2, 1.0, 1 - mask)
    np.testing.assert_allclose(out["loss_counter"], (np.log(2) * (1 - rate) * coef).mean(),
                               rtol=1e-5)


def test_caption_loss_and_weights():
    logp = jnp.log(jnp.asarray([[[0.5, 0.25, 1.0], [0.1, 0.1, 0.1]]]))
    mask = jnp.asarray([[[1, 1, 0], [1, 1, 1]]])
    per = np.asarray(losses.caption_nll(logp, mask))
    np.testing.assert_allclose(per[0, 0], -(np.log(0.5) + np.log(0.25)) / (2 + 1e-6), rtol=1e-5)
    loss = losses.matched_caption_loss(logp, mask, jnp.asarray([[0, -1]]))
    np.testing.assert_allclose(loss, per[0, 0], rtol=1e-6)
    total = losses.weighted_total(
        {"loss_ce": 1.0, "loss_ce_0": 2.0, "loss_caption": 1.0, "loss_bbox": 5.0},
        losses.PDVC_WEIGHTS)
    assert total == 2 * 1 + 2 * 2 + 2 * 1 + 0 * 5
