"""PDVC model forward, GT-proposal mode and decoding (decode == teacher-forced argmax)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from captioner_jax import decoding
from captioner_jax.models.pdvc import PDVC

B, T, C, V = 2, 20, 12, 30


@pytest.fixture(scope="module")
def tiny():
    # 3 levels / 1 encoder layer keep compilation short; 2 decoder layers for refinement.
    model = PDVC(vocab_size=V, hidden_dim=32, num_heads=4, ffn_dim=32, num_queries=5,
                 rnn_size=32, word_dim=16, att_hid=16, num_levels=3, cap_levels=3,
                 enc_layers=1)
    rng = np.random.default_rng(0)
    feats = jnp.asarray(rng.normal(size=(B, T, C)), jnp.float32)
    valid = jnp.ones((B, T), bool)
    dur = jnp.asarray([30.0, 300.0])
    variables = jax.jit(
        lambda k: model.init({"params": k}, feats, valid, dur, method=PDVC.init_all)
    )(jax.random.PRNGKey(0))
    out = jax.jit(lambda v: model.apply(v, feats, valid, dur))(variables)
    return model, variables, feats, valid, dur, out


def test_forward_shapes_and_refinement(tiny):
    model, variables, feats, valid, dur, out = tiny
    assert out["hs"].shape == (2, B, 5, 32)
    assert out["logits"].shape == (2, B, 5)
    assert out["counts"].shape == (2, B, 11)
    assert out["boxes"].shape == (2, B, 5, 2)
    assert out["memory"].shape == (B, 20 + 10 + 5, 32)
    # Layer 0 refines a 1-d (centre) reference, later layers the previous layer's box.
    assert out["caption_refs"][0].shape == (B, 5, 1)
    np.testing.assert_allclose(out["caption_refs"][1], out["boxes"][0], rtol=1e-6)
    # Class bias starts at the focal prior -log(99) (zero-mean kernel): mean prob near 0.01.
    p = variables["params"]
    np.testing.assert_allclose(p["class_heads_0"]["bias"], [-np.log(99.0)], rtol=1e-6)
    np.testing.assert_allclose(p["bbox_heads_0"]["Dense_2"]["bias"], [0.0, -2.0])
    assert np.all((np.asarray(out["boxes"]) > 0) & (np.asarray(out["boxes"]) < 1))


def test_gt_proposal_mode_keeps_boxes(tiny):
    model, variables, feats, valid, dur, _ = tiny
    gt = jnp.asarray([[[0.3, 0.2], [0.7, 0.4], [0.0, 0.0]],
                      [[0.5, 0.9], [0.2, 0.1], [0.6, 0.3]]], jnp.float32)
    gt_valid = jnp.asarray([[True, True, False], [True, True, True]])
    out = jax.jit(lambda v: model.apply(v, feats, valid, dur, gt, gt_valid))(variables)
    assert out["hs"].shape == (2, B, 3, 32)
    np.testing.assert_allclose(out["boxes"][-1], gt)
    np.testing.assert_allclose(out["caption_refs"][-1], gt)


def test_greedy_decode_equals_teacher_forced_argmax(tiny):
    model, variables, *_, out = tiny
    max_len = 8

    @jax.jit
    def run(variables, out):
        step_fn, carry = decoding.caption_decoder_from_outputs(model, variables, out)
        tokens, logprobs, mask = decoding.decode_tokens(step_fn, carry, max_len=max_len)
        seq = jnp.concatenate([jnp.zeros((tokens.shape[0], 1), jnp.int32), tokens], axis=1)
        tf_logp, full = decoding.teacher_forced(step_fn, carry, seq, return_logprobs=True)
        return tokens, logprobs, mask, tf_logp, full

    tokens, logprobs, mask, tf_logp, full = map(np.asarray, run(variables, out))
    assert tokens.shape == (B * 5, max_len)
    m = mask > 0
    np.testing.assert_array_equal(full.argmax(-1)[m], tokens[m])
    np.testing.assert_allclose(tf_logp[m], logprobs[m], rtol=1e-5, atol=1e-5)
    # After the first EOS (0) everything is masked and zero.
    for row_t, row_m in zip(tokens, mask):
        eos = np.flatnonzero(row_t == 0)
        if len(eos):
            assert row_m[: eos[0] + 1].all() and not row_m[eos[0] + 1:].any()
            assert not row_t[eos[0]:].any()


def test_sampling_is_seeded_and_masked():
    """decode_tokens on a fixed toy step function: sampling reproducible, EOS stops a row."""
    logits = jnp.log(jnp.asarray([[0.5, 0.25, 0.25], [0.0001, 0.5, 0.4999]]))

    def step_fn(carry, prev):
        return carry + 1, logits

    key = jax.random.PRNGKey(3)
    a = decoding.decode_tokens(step_fn, jnp.zeros((2,)), max_len=6, key=key, greedy=False)
    b = decoding.decode_tokens(step_fn, jnp.zeros((2,)), max_len=6, key=key, greedy=False)
    np.testing.assert_array_equal(a[0], b[0])
    g_tok, g_logp, g_mask = decoding.decode_tokens(step_fn, jnp.zeros((2,)), max_len=3)
    np.testing.assert_array_equal(g_tok, [[0, 0, 0], [1, 1, 1]])
    np.testing.assert_array_equal(g_mask, [[1, 0, 0], [1, 1, 1]])
    np.testing.assert_allclose(g_logp[1], np.log(0.5), rtol=1e-5)


def test_decoding_stops_when_every_row_ended_with_the_same_outputs():
    """The decode loop runs only until the last row's EOS (PDVC's sampler breaks there too);
    its outputs equal those of a reference loop over all max_len steps, and the greedy
    choice equals argmax + log_softmax, ties resolved to the first index."""
    # Row r emits word 1 + r for r + 1 steps, then EOS (0); row 2 has a tie at its word.
    plan = jnp.asarray([[5, 0, 0, 0, 0], [2, 2, 0, 0, 0], [3, 3, 3, 0, 0]])
    vocab = 6
    calls = []

    def step_fn(t, prev):
        jax.debug.callback(lambda: calls.append(1))
        logits = jax.nn.one_hot(plan[:, t], vocab) * 3.0 + jnp.linspace(0, 0.1, vocab)
        logits = logits.at[2, 4].set(logits[2, 3])  # a tie for row 2: first index wins
        return t + 1, logits

    tok, logp, mask = jax.jit(lambda: decoding.decode_tokens(
        step_fn, jnp.zeros((), jnp.int32), max_len=8, batch_size=3))()
    jax.effects_barrier()
    assert len(calls) == 4  # steps 0..3: the last row ends at step 3 of 8
    expected = np.zeros((3, 8), np.int32)
    expected[0, 0], expected[1, :2], expected[2, :3] = 5, 2, 3
    np.testing.assert_array_equal(tok, expected)
    np.testing.assert_array_equal(mask.sum(1), [2, 3, 4])
    ref_logits = np.stack([np.asarray(step_fn(t, None)[1]) for t in range(4)], 1)
    ref_logp = np.asarray(jax.nn.log_softmax(jnp.asarray(ref_logits), -1))
    want = np.take_along_axis(ref_logp, np.argmax(ref_logits, -1)[..., None], -1)[..., 0]
    np.testing.assert_array_equal(logp[:, :4] * mask[:, :4], want * mask[:, :4])
    assert not logp[:, 4:].any()


def test_counter_max_over_queries_is_differentiated_like_pytorch():
    """The counter head's max over queries: the forward value of `max(axis=1)`, and the whole
    gradient on the first maximal query of each channel (PyTorch `max(dim)`), never split
    and never divided by a count of equal elements (see `max_over_queries`)."""
    from captioner_jax.models.pdvc import max_over_queries

    x = jnp.asarray([[[1.0, 5.0, -2.0], [3.0, 5.0, -2.0], [3.0, 0.0, -7.0]]])  # [1, 3, 3]
    np.testing.assert_array_equal(max_over_queries(x), x.max(axis=1))
    weights = jnp.asarray([[2.0, 3.0, 4.0]])
    grad = jax.grad(lambda v: jnp.sum(max_over_queries(v) * weights))(x)
    # Channel 0: tie between queries 1 and 2 -> query 1; channel 1: queries 0 and 1 -> 0;
    # channel 2: queries 0 and 1 -> 0. jnp.max would give each tied query half.
    expected = np.zeros((1, 3, 3), np.float32)
    expected[0, 1, 0], expected[0, 0, 1], expected[0, 0, 2] = 2.0, 3.0, 4.0
    np.testing.assert_array_equal(grad, expected)


def test_count_heads_take_the_first_maximal_query(tiny):
    """Through the model: decoder outputs replaced by one tied array (every query equal) make
    each channel's maximum a tie across all queries; the count heads' gradient reaches query
    0 only (PyTorch's `hs.max(1)`), where `jnp.max` would spread it over the tied queries."""
    import flax.linen as nn

    from captioner_jax.models.transformer import DecoderLayer

    model, variables, feats, valid, dur, _ = tiny
    rows = np.random.default_rng(1).normal(size=(B, 1, 32)).astype(np.float32)
    tied = jnp.asarray(np.repeat(rows, 5, axis=1))  # [B, N, D], the same row for every query

    def counts(hs):
        def replace_decoder_output(next_fun, args, kwargs, context):
            out = next_fun(*args, **kwargs)
            if isinstance(context.module, DecoderLayer) and context.method_name == "__call__":
                return hs
            return out

        with nn.intercept_methods(replace_decoder_output):
            return model.apply(variables, feats, valid, dur)["counts"].sum()

    grad = np.asarray(jax.jit(jax.grad(counts))(tied))
    assert np.abs(grad[:, 0]).min() > 0
    np.testing.assert_array_equal(grad[:, 1:], 0.0)
