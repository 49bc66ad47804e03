"""The captioner's fast caption paths equal their definitions.

* `caption_heads.hoisted_step` (value projection, ctx2att, event and word parts of the LSTM
  input hoisted out of the time loop) against the per-step cell `PDVC.caption_step`: the same
  greedy ids, log-probabilities to float rounding, the same dropout masks in training; and
  as inference runs it: the word part of the gates read from `decoding.word_gate_table`, the
  memory projected through the attention input weight once (`attention_gates`).
* `decoding.caption_token_logprobs` (what the caption loss reads: padded steps and unmatched
  positions skipped) against the untrimmed computation (every position of every event):
  bitwise equal losses and gradients; and against teacher forcing with the per-step cell.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from optax import global_norm as optax_norm

from captioner_jax import decoding, losses
from captioner_jax.models.pdvc import PDVC

B, T, C, V, N, L = 2, 16, 8, 23, 4, 9


def _caption_batch(lengths=((3, 6, 0, 2), (5, 0, 4, 1))):
    """Targets of 4 events per video: different real lengths (0: an unmatched event)."""
    rng = np.random.default_rng(1)
    tokens = np.zeros((B, N, L), np.int32)
    mask = np.zeros((B, N, L), bool)
    for (b, n), length in np.ndenumerate(np.asarray(lengths)):
        if length:
            tokens[b, n, 1:length + 1] = rng.integers(1, V, length)
            mask[b, n, :length + 2] = True  # BOS, words, EOS
    return jnp.asarray(tokens), jnp.asarray(mask[..., 1:])


@pytest.fixture(scope="module")
def tiny():
    model = PDVC(vocab_size=V, hidden_dim=32, num_heads=4, ffn_dim=32, num_queries=N, cap_heads=2,
                 rnn_size=32, word_dim=16, att_hid=16, num_levels=2, cap_levels=2,
                 enc_layers=1, dec_layers=1)
    rng = np.random.default_rng(0)
    feats = jnp.asarray(rng.normal(size=(B, T, C)), jnp.float32)
    valid = jnp.asarray(np.arange(T)[None] < np.array([[T], [11]]))
    dur = jnp.asarray([30.0, 300.0])
    variables = jax.jit(lambda k: model.init(
        {"params": k}, feats, valid, dur, method=PDVC.init_all))(jax.random.PRNGKey(0))
    out = jax.jit(lambda v: model.apply(v, feats, valid, dur))(variables)
    out = {k: out[k] for k in ("memory", "memory_padding", "valid_ratios", "hs",
                               "caption_refs")}
    return model, variables, out


def test_hoisted_step_equals_the_cell(tiny):
    model, variables, out = tiny
    tokens, _ = _caption_batch()
    seq = tokens.reshape(B * N, L)

    @jax.jit
    def run(variables, out):
        res = []
        for hoisted in (True, False):
            step_fn, carry = decoding.caption_decoder_from_outputs(
                model, variables, out, hoisted=hoisted)
            res.append(decoding.decode_tokens(step_fn, carry, max_len=L)[:2])
            step_fn, carry = decoding.caption_decoder_from_outputs(
                model, variables, out, hoisted=hoisted, train=True,
                dropout_key=jax.random.PRNGKey(5))
            res.append(decoding.teacher_forced(step_fn, carry, seq))
        step_fn, carry = decoding.caption_decoder_from_outputs(
            model, variables, out, word_gate_table=decoding.word_gate_table(model, variables),
            attention_gates=True)
        res.append(decoding.decode_tokens(step_fn, carry, max_len=L)[:2])
        return res

    (fast_ids, fast_lp), fast_tf, (ref_ids, ref_lp), ref_tf, (tab_ids, tab_lp) = run(
        variables, out)
    assert len(np.unique(np.asarray(ref_ids))) > 2, "degenerate greedy ids: vacuous check"
    np.testing.assert_array_equal(fast_ids, ref_ids)
    np.testing.assert_allclose(fast_lp, ref_lp, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(tab_ids, ref_ids)
    np.testing.assert_allclose(tab_lp, ref_lp, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fast_tf, ref_tf, rtol=1e-5, atol=1e-6)  # same dropout masks


# 6 of 8 rows per video have a target: every row runs. 2 + 2 of 8 (as PDVC's ~4 matched of
# 10 queries per layer): the rows with a target are compacted into the first half.
@pytest.mark.parametrize("lengths", [((3, 6, 0, 2), (5, 0, 4, 1)),
                                     ((0, 6, 0, 2), (5, 0, 0, 1))],
                         ids=["all_rows", "compacted_rows"])
def test_trimmed_teacher_forcing_equals_untrimmed(tiny, lengths):
    """Two groups in one loop (as the objective runs both decoder layers): centre-only and
    (centre, length) references, different targets and dropout keys."""
    model, variables, out = tiny
    tokens, target_mask = _caption_batch(lengths)
    groups = [(out["hs"][-1], out["caption_refs"][-1], tokens, target_mask),
              (out["hs"][-1][:, ::-1], jax.nn.sigmoid(out["hs"][-1][..., :2]),
               jnp.roll(tokens, 1, axis=1), jnp.roll(target_mask, 1, axis=1))]
    assert groups[0][1].shape[-1] == 1 and groups[1][1].shape[-1] == 2
    keys = [jax.random.PRNGKey(7), jax.random.PRNGKey(8)]

    def loss(params, skip):
        logps = decoding.caption_token_logprobs(
            model, {"params": params}, out, *map(list, zip(*groups)), train=True,
            dropout_key=keys, skip_padding=skip, chunk=8)
        total = sum(losses.caption_nll(lp, g[3]).sum() for lp, g in zip(logps, groups))
        return total, logps

    def reference(params):  # the per-step cell over every position (before the fast path)
        logps = []
        for (hs, refs, toks, _), key in zip(groups, keys):
            step_fn, carry = decoding.caption_decoder(
                model, {"params": params}, out, hs, refs, train=True, dropout_key=key,
                hoisted=False)
            logps.append(decoding.teacher_forced(step_fn, carry, toks.reshape(B * N, L))
                         .reshape(B, N, L - 1))
        return sum(losses.caption_nll(lp, g[3]).sum() for lp, g in zip(logps, groups)), logps

    grad = jax.jit(jax.value_and_grad(loss, has_aux=True))  # one program: skip is traced
    params = variables["params"]
    (trimmed, logp), g_trimmed = grad(params, True)
    (untrimmed, logp_all), g_untrimmed = grad(params, False)
    # Plain autodiff of the per-step cell: an independent check of the fast path's gradients
    # (`loop_gradients`: weight gradients formed after the loops).
    (reference, logp_ref), g_ref = jax.jit(jax.value_and_grad(reference, has_aux=True))(params)
    if lengths[0][0]:  # every row runs: the same program path, bitwise equal
        np.testing.assert_array_equal(trimmed, untrimmed)
        jax.tree.map(np.testing.assert_array_equal, logp, logp_all)
        jax.tree.map(np.testing.assert_array_equal, g_trimmed, g_untrimmed)
    else:  # half the rows: matmuls of another shape, equal to float rounding
        np.testing.assert_allclose(trimmed, untrimmed, rtol=1e-6)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
                     logp, logp_all)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7),
                     g_trimmed, g_untrimmed)
    for lp, lp_ref, (*_, m) in zip(logp, logp_ref, groups):
        lp, lp_ref, m = np.asarray(lp), np.asarray(lp_ref), np.asarray(m)
        assert np.all(lp[~m] == 0) and np.all(lp[m] < 0)
        np.testing.assert_allclose(lp[m], lp_ref[m], rtol=1e-5)
    np.testing.assert_allclose(trimmed, reference, rtol=1e-6)
    assert float(optax_norm(g_trimmed["caption_cell"])) > 0
    scale = {k: float(jnp.abs(v).max()) for k, v in
             jax.tree_util.tree_leaves_with_path(g_ref["caption_cell"])}
    for path, g in jax.tree_util.tree_leaves_with_path(g_trimmed["caption_cell"]):
        r = scale[path]
        np.testing.assert_allclose(g, _at(g_ref["caption_cell"], path), rtol=1e-4,
                                   atol=1e-5 * max(r, 1e-3), err_msg=jax.tree_util.keystr(path))


def _at(tree, path):
    for key in path:
        tree = tree[key.key]
    return tree
