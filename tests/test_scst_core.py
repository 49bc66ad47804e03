"""SCST core on a toy recurrent caption model: sampler, teacher-forced scoring, loss, rewards."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from captioner_jax.scst.loss import advantages, scst_loss
from captioner_jax.scst.rewards import (
    CaptionReward,
    batch_rewards,
    caption_texts,
    sample_and_greedy_rewards,
)
from captioner_jax.scst.sampler import (
    carry_tiling_decoder,
    make_sampler,
    mask_through_eos,
    sequence_logprobs,
    tile_carry,
)

V, D, L, K = 7, 6, 5, 4  # vocab (0 = BOS/EOS), hidden size, max length, samples per event


def toy_params(seed=0):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    return {
        "embed": jax.random.normal(k1, (V, D)),
        "recur": 0.5 * jax.random.normal(k2, (D, D)),
        "out": 1.5 * jax.random.normal(k3, (D, V)),
    }


def toy_build_decoder(params, inputs):
    """A tiny RNN caption head: carry = hidden [N, D]; logits = h @ out."""

    def step_fn(h, prev):
        h = jnp.tanh(h @ params["recur"] + params["embed"][prev])
        return h, h @ params["out"]

    return carry_tiling_decoder(step_fn, jnp.tanh(inputs["feat"]))


@pytest.fixture(scope="module")
def decode_fn():
    from captioner_jax.decoding import decode_tokens

    return decode_tokens


@pytest.fixture(scope="module")
def params():
    return toy_params()


@pytest.fixture(scope="module")
def feats():
    return {"feat": jax.random.normal(jax.random.key(1), (3, D))}


def test_mask_through_eos_by_hand():
    tokens = jnp.array([[3, 4, 0, 0, 0], [5, 5, 5, 5, 5], [0, 0, 0, 0, 0], [2, 0, 3, 0, 1]])
    expected = np.array(
        [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [1, 1, 0, 0, 0]], np.float32
    )
    np.testing.assert_array_equal(mask_through_eos(tokens, eos_id=0), expected)


def test_tile_carry_is_event_major():
    carry = {"h": jnp.arange(6).reshape(3, 2), "c": jnp.arange(3)}
    tiled = tile_carry(carry, 2)
    np.testing.assert_array_equal(tiled["c"], [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(tiled["h"][2:4], [[2, 3], [2, 3]])


def test_low_temperature_sampling_equals_greedy(decode_fn, params, feats):
    sampler = make_sampler(
        toy_build_decoder, num_samples=K, max_len=L, temperature=1e-4, decode_fn=decode_fn
    )
    out = sampler(params, feats, jax.random.key(7))
    greedy = np.asarray(out["greedy_tokens"])
    samples = np.asarray(out["sample_tokens"]).reshape(3, K, L)
    for k in range(K):
        np.testing.assert_array_equal(samples[:, k], greedy)
    # Greedy must also be the teacher-forced argmax path of the same model.
    step_fn, carry = toy_build_decoder(params, feats)(1)
    lp = np.asarray(jax.jit(sequence_logprobs, static_argnums=0)(
        step_fn, carry, out["greedy_tokens"]))
    h, prev = carry, jnp.zeros((3,), jnp.int32)
    for t in range(L):
        h, logits = step_fn(h, prev)
        prev = jnp.argmax(logits, -1)
        alive = np.asarray(out["greedy_mask"][:, t]) > 0
        np.testing.assert_array_equal(np.asarray(prev)[alive], greedy[alive, t])
        ref_lp = np.asarray(jax.nn.log_softmax(logits))[np.arange(3), greedy[:, t]]
        np.testing.assert_allclose(lp[alive, t], ref_lp[alive], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_sampled_first_token_matches_softmax_chi_square(decode_fn, params, temperature):
    n_draws = 6000
    feat = {"feat": jax.random.normal(jax.random.key(3), (1, D))}
    sampler = make_sampler(
        toy_build_decoder, num_samples=n_draws, max_len=2, temperature=temperature,
        with_greedy=False, decode_fn=decode_fn,
    )
    out = sampler(params, feat, jax.random.key(11))
    first = np.asarray(out["sample_tokens"][:, 0])
    step_fn, carry = toy_build_decoder(params, feat)(1)
    _, logits = step_fn(carry, jnp.zeros((1,), jnp.int32))
    probs = np.asarray(jax.nn.softmax(logits[0] / temperature), np.float64)
    probs = probs / probs.sum()
    observed = np.bincount(first, minlength=V)
    keep = probs * n_draws >= 5  # chi-square validity: expected count >= 5 per cell
    expected = probs * n_draws
    obs = np.append(observed[keep], observed[~keep].sum())
    exp = np.append(expected[keep], expected[~keep].sum())
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    _, p_value = scipy.stats.chisquare(obs, exp)
    assert p_value > 1e-3, (observed, expected)
    # The sampler's own log-probs are the model's (untempered) log-softmax at the drawn tokens.
    model_logp = np.asarray(jax.nn.log_softmax(logits[0]))
    np.testing.assert_allclose(
        np.asarray(out["sample_logprobs"][:, 0]), model_logp[first], rtol=1e-4, atol=1e-5
    )


def test_loss_matches_hand_computation():
    lp = jnp.array([[-1.0, -2.0, -0.5], [-0.3, -0.2, -9.0], [-1.0, -1.0, -1.0]])
    mask = jnp.array([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])  # row 3 = padding
    adv = jnp.array([0.5, -2.0, 3.0])
    # -(0.5 * -3 + -2 * -9.5) / 2 valid samples = -(−1.5 + 19) / 2 = -8.75
    assert float(scst_loss(lp, mask, adv)) == pytest.approx(-8.75)
    assert float(scst_loss(lp, mask, adv, normalize="tokens")) == pytest.approx(-17.5 / 5)


def test_advantages_baselines_by_hand():
    r = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 3.0]])
    np.testing.assert_allclose(advantages(r, np.array([2.0, 1.0])), [[-1, 0, 1], [-1, -1, 2]])
    # mean of the other two samples: event 0 -> b = [2.5, 2, 1.5]; event 1 -> [1.5, 1.5, 0]
    np.testing.assert_allclose(
        advantages(r, None, "mean_others"), [[-1.5, 0, 1.5], [-1.5, -1.5, 3]]
    )
    with pytest.raises(ValueError, match="greedy_rewards"):
        advantages(r, None, "greedy")


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_gradient_step_moves_sample_logprob_with_advantage(decode_fn, params, sign):
    """One SGD step raises log p(sample) when it beat greedy and lowers it otherwise."""
    feat = {"feat": jax.random.normal(jax.random.key(5), (1, D))}
    sampler = make_sampler(
        toy_build_decoder, num_samples=1, max_len=L, temperature=1.0, decode_fn=decode_fn
    )
    # Find a sample that differs from the greedy decode (fixed seeds, deterministic).
    for seed in range(50):
        out = sampler(params, feat, jax.random.key(seed))
        if not np.array_equal(out["sample_tokens"], out["greedy_tokens"]):
            break
    tokens, mask = out["sample_tokens"], out["sample_mask"]
    # Host rewards: this sample scores `sign` above the greedy decode.
    adv = jnp.asarray(advantages(np.array([[0.5 + sign]]), np.array([0.5])).reshape(-1))

    @jax.jit
    def seq_lp(p):
        step_fn, carry = toy_build_decoder(p, feat)(1)
        return jnp.sum(sequence_logprobs(step_fn, carry, tokens) * mask)

    def loss_fn(p):
        step_fn, carry = toy_build_decoder(p, feat)(1)
        return scst_loss(sequence_logprobs(step_fn, carry, tokens), mask, adv)

    loss, grads = jax.jit(jax.value_and_grad(loss_fn))(params)
    assert float(loss) == pytest.approx(-sign * float(seq_lp(params)), rel=1e-5)
    new_params = jax.tree.map(lambda p, g: p - 0.01 * g, params, grads)
    delta = float(seq_lp(new_params) - seq_lp(params))
    assert delta * sign > 0, delta


class _Overlap:
    """Toy scorer: fraction of hypothesis words that occur in a reference."""

    def score(self, hyps, refs):
        out = []
        for h, rs in zip(hyps, refs):
            words = h.split()
            ref_words = {w for r in rs for w in r.split()}
            out.append(sum(w in ref_words for w in words) / max(len(words), 1))
        return np.array(out)


class _Length:
    def score(self, hyps, refs):
        return np.array([len(h.split()) for h in hyps], float)


class _Vocab:
    words = {1: "a", 2: "red", 3: "ball", 4: "cube", 5: "blue"}

    def word(self, i):
        return self.words[i]


def test_rewards_mix_and_layout():
    tokens = np.array([[1, 2, 3, 0, 4], [1, 4, 0, 0, 0], [2, 2, 2, 2, 2], [0, 1, 1, 1, 1]])
    sents = caption_texts(tokens, _Vocab())
    assert sents == ["a red ball", "a cube", "red red red red red", ""]
    reward = CaptionReward({"overlap": (0.95, _Overlap()), "length": (0.05, _Length())})
    refs = [["a red ball"], ["a blue cube"]]
    sample_r, greedy_r, logs = sample_and_greedy_rewards(
        reward, sents, ["a ball", "cube"], refs, num_samples=2
    )
    # samples 0,1 -> event 0; samples 2,3 -> event 1
    np.testing.assert_allclose(
        sample_r, [[0.95 + 0.15, 0.95 * 0.5 + 0.1], [0.0 + 0.25, 0.0]], rtol=1e-12
    )
    np.testing.assert_allclose(greedy_r, [0.95 + 0.1, 0.95 + 0.05])
    assert logs["length_greedy"] == pytest.approx(1.5)
    with pytest.raises(ValueError, match="K=3"):
        sample_and_greedy_rewards(reward, sents, None, refs, num_samples=3)


def test_batch_rewards_what_the_trainer_computes():
    """`batch_rewards` (the SCST trainer's host step) on 3 event slots, the middle one padding:
    rewards only for real events, advantages vs the greedy baseline, masks through EOS."""
    captions = np.array([[0, 1, 2, 3, 0], [0, 4, 0, 0, 0], [0, 1, 5, 4, 0]])  # BOS first
    valid = np.array([True, False, True])
    samples = np.array([[1, 2, 3, 0], [1, 0, 0, 0],     # event 0: "a red ball", "a"
                        [4, 4, 4, 4], [4, 0, 0, 0],     # padding slot
                        [1, 5, 4, 0], [2, 2, 0, 0]])    # event 2: "a blue cube", "red red"
    greedy = np.array([[1, 3, 0, 0], [4, 0, 0, 0], [1, 4, 0, 0]])
    reward = CaptionReward({"overlap": (1.0, _Overlap())})
    adv, mask, metrics = batch_rewards(captions, valid, samples, greedy, _Vocab(), reward,
                                       num_samples=2, baseline="greedy")
    np.testing.assert_allclose(adv, [1 - 1, 1 - 1, 0, 0, 1 - 1, 0 - 1])
    np.testing.assert_array_equal(mask, [[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0],
                                         [0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 0]])
    assert metrics["events"] == 2 and metrics["reward_greedy"] == 1.0
    assert metrics["reward_sample"] == pytest.approx(0.75)
    assert metrics["overlap_sample"] == pytest.approx(0.75)
    assert metrics["sample_len"] == pytest.approx((4 + 2 + 4 + 3) / 4)


def test_update_step_trains_only_the_selected_subset(decode_fn, params, feats):
    from captioner_jax.scst.update import init_state, make_optimizer, make_update_step

    sampler = make_sampler(toy_build_decoder, num_samples=K, max_len=L, decode_fn=decode_fn)
    out = sampler(params, feats, jax.random.key(2))
    adv = jnp.asarray(np.linspace(-1, 1, 3 * K), jnp.float32)
    opt = make_optimizer(params, learning_rate=1e-2, trainable=("^out$",), grad_clip=1.0)
    update = make_update_step(toy_build_decoder, opt, num_samples=K)
    state = init_state(jax.tree.map(jnp.copy, params), opt)
    state, metrics = update(state, feats, out["sample_tokens"], out["sample_mask"], adv)
    assert int(state["step"]) == 1 and np.isfinite(float(metrics["loss"]))
    np.testing.assert_array_equal(state["params"]["embed"], params["embed"])
    np.testing.assert_array_equal(state["params"]["recur"], params["recur"])
    assert not np.allclose(state["params"]["out"], params["out"])
    with pytest.raises(ValueError, match="no parameter path"):
        make_optimizer(params, learning_rate=1e-2, trainable=("caption_head",))
