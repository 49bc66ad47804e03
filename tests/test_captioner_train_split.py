"""The captioner trainer's two-program step equals the one-program step.

Mode "queries" runs `train.make_training_forward` (the forward, its matching costs and its
pullback), the host solver, then `make_train_step(..., forward=(outputs, pullback))`, which
finishes the step on the forward's outputs; the reference is the same step with the forward
run inside it (`forward=None`, `objective.compute_losses` differentiated as one function).
With SGD at learning rate 1 the parameter change is the gradient itself, so comparing the
updated parameters compares every gradient leaf (Adam's first step would amplify float
noise of parameters whose exact gradient is 0, e.g. the attention key biases). A tiny PDVC
with two decoder layers (auxiliary losses, the shared caption head's two groups), dropout on,
on a mesh of two CPU devices (the batch and the forward's residuals sharded).
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from captioner_jax import train
from captioner_jax.models.pdvc import PDVC
from captioner_jax.objective import MatcherCosts
from data_prep.infra import mesh as mesh_lib

B, T, C, V, N, E, L = 2, 16, 8, 23, 5, 6, 9
WEIGHTS = {"loss_ce": 2.0, "loss_bbox": 0.0, "loss_giou": 4.0, "loss_counter": 0.5,
           "loss_caption": 2.0}


def _batch():
    """Two videos: 3 and 2 events with captions of 2-6 words, the other event slots empty."""
    rng = np.random.default_rng(3)
    boxes = np.zeros((B, E, 2), np.float32)
    valid = np.zeros((B, E), bool)
    caps = np.zeros((B, E, L), np.int32)
    mask = np.zeros((B, E, L), bool)
    for b, lengths in enumerate(((4, 2, 6), (5, 3))):
        for e, length in enumerate(lengths):
            boxes[b, e] = rng.uniform(0.2, 0.7), rng.uniform(0.05, 0.3)
            valid[b, e] = True
            caps[b, e, 1:length + 1] = rng.integers(1, V, length)
            mask[b, e, :length + 2] = True  # BOS, words, EOS
    return {"feats": rng.normal(size=(B, T, C)).astype(np.float32),
            "feat_valid": np.arange(T)[None] < np.array([[T], [12]]),
            "duration": np.array([40.0, 150.0], np.float32), "gt_boxes": boxes,
            "gt_valid": valid, "captions": caps, "caption_mask": mask}


@pytest.fixture(scope="module")
def steps():
    model = PDVC(vocab_size=V, hidden_dim=32, num_heads=4, ffn_dim=32, num_queries=N,
                 cap_heads=2, rnn_size=32, word_dim=16, att_hid=16, num_levels=2,
                 cap_levels=2, enc_layers=1, dec_layers=2)
    mesh = mesh_lib.make_mesh(devices=jax.devices()[:2])
    host = _batch()
    batch = mesh_lib.global_batch(host, mesh_lib.batch_sharding(mesh))
    params = jax.jit(lambda k: model.init(
        {"params": k}, batch["feats"], batch["feat_valid"], batch["duration"],
        method=PDVC.init_all)["params"])(jax.random.key(0))
    params = jax.tree.map(np.asarray, params)
    tx = optax.sgd(1.0)
    rep = mesh_lib.replicated(mesh)
    costs = MatcherCosts()
    update = train.make_train_step(model, tx, lambda step: 1.0, mode="queries", costs=costs,
                                   weights=WEIGHTS, state_sharding=rep, metric_sharding=rep)
    training_forward = train.make_training_forward(model, costs, mesh_lib.batch_sharding(mesh))
    key = jax.random.key(7)

    def state():  # a fresh copy (the update donates its state)
        return jax.device_put({"params": params, "opt_state": tx.init(params),
                               "step": jnp.asarray(3, jnp.int32)}, rep)

    def two_programs(s):
        assign, fwd = train._match(training_forward, s, batch, host, key, mesh)
        return update(s, batch, key, assign, fwd), assign

    def one_program(s, assign):
        return update(s, batch, key, assign)

    return params, state, two_programs, one_program


def test_two_program_step_equals_the_forward_in_the_step(steps):
    params, state, two_programs, one_program = steps
    (split_state, split_metrics), assign = two_programs(state())
    # The host solver's assignment, the same for both: every video's GT events matched.
    a = np.asarray(assign)
    assert a.shape == (B, 2, N)
    assert [sorted(a[b, layer][a[b, layer] >= 0].tolist()) for b in range(B) for layer in
            range(2)] == [[0, 1, 2], [0, 1, 2], [0, 1], [0, 1]]
    whole_state, whole_metrics = one_program(state(), assign)
    assert set(split_metrics) == set(whole_metrics)
    assert {"loss_caption", "loss_caption_0", "loss_giou_0"} <= set(split_metrics)
    for name in whole_metrics:
        np.testing.assert_allclose(float(split_metrics[name]), float(whole_metrics[name]),
                                   rtol=1e-6, err_msg=name)
    assert int(split_state["step"]) == int(whole_state["step"]) == 4
    # SGD at rate 1: params - new params = the gradient, leaf by leaf.
    split = jax.tree.map(lambda p, q: p - np.asarray(q), params, split_state["params"])
    whole = jax.tree.map(lambda p, q: p - np.asarray(q), params, whole_state["params"])
    leaves = jax.tree_util.tree_leaves_with_path(whole)
    moved = {jax.tree_util.keystr(k).split("'")[1] for k, g in leaves if np.abs(g).max() > 0}
    # Gradients reach the caption head (the loss's own parameters) and the forward's modules
    # (through the pullback).
    assert {"caption_cell", "encoder_0", "decoder_0", "decoder_1"} <= moved
    # atol: float noise of the gradients that are 0 in exact arithmetic (softmax-invariant
    # biases), relative to the largest gradient entry.
    scale = max(float(np.abs(g).max()) for _, g in leaves)
    for (path, g_whole), g_split in zip(leaves, jax.tree.leaves(split)):
        np.testing.assert_allclose(g_split, g_whole, rtol=1e-5, atol=1e-7 * scale,
                                   err_msg=jax.tree_util.keystr(path))
