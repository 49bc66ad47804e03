"""PDVC post-processing (joint score, counter top-k, time order), configs, light head."""
import jax
import jax.numpy as jnp
import numpy as np

from captioner_jax import postprocess
from captioner_jax.models.caption_heads import CaptionCell
from configs.captioner import activitynet, synthetic
from data_prep.text.caption_vocab import CaptionVocab


def test_joint_score_counter_topk_and_time_order():
    vocab = CaptionVocab(["a", "man", "runs", "UNK"])
    probs = np.asarray([0.9, 0.2, 0.6])
    boxes = np.asarray([[0.7, 0.2], [0.2, 0.2], [0.3, 0.8]])  # (centre, length)
    tokens = np.asarray([[1, 2, 3, 0], [2, 0, 0, 0], [1, 2, 0, 0]])
    logp = np.asarray([[-1.0, -1.0, -1.0, -0.5], [-0.1, -0.2, 0, 0], [-2.0, -2.0, -0.3, 0]])
    count_logits = np.asarray([0.0, 0.0, 3.0, 1.0])  # argmax 2 -> keep two events
    out = postprocess.video_predictions(probs, boxes, count_logits, tokens, logp, 10.0, vocab)
    # Sentence scores (words only): -3, -0.1, -4; joint = s / (n_words^2 + 1e-5) + p.
    joint = {0: -3 / (9 + 1e-5) + 0.9, 1: -0.1 / (1 + 1e-5) + 0.2, 2: -4 / (4 + 1e-5) + 0.6}
    assert sorted(joint, key=joint.get, reverse=True)[:2] == [0, 1]
    assert [e["query_id"] for e in out] == [1, 0]  # the two best, in time order
    assert out[0]["sentence"] == "man." and out[1]["sentence"] == "a man runs."
    np.testing.assert_allclose(out[1]["timestamp"], [6.0, 8.0])
    np.testing.assert_allclose(out[0]["joint_score"], joint[1])
    # Without reranking every valid query is kept; boxes clipped to [0, duration].
    all_out = postprocess.video_predictions(probs, boxes, None, tokens, logp, 10.0, vocab,
                                            rerank=False, query_valid=[True, True, True])
    assert [e["query_id"] for e in all_out] == [2, 1, 0]
    np.testing.assert_allclose(all_out[0]["timestamp"], [0.0, 7.0])
    sub = postprocess.submission({"v_x": all_out})
    assert sub["results"]["v_x"] is all_out and "version" in sub


def test_configs_build():
    s = synthetic.get_config("root=/tmp/x,mode=gt,head=light,epochs=2,batch=8")
    assert s.mode == "gt_proposals" and s.loss_weights.loss_giou == 0.0
    assert s.model.caption_head == "light" and s.num_epochs == 2 and s.data.batch_size == 8
    a = activitynet.get_config("features=/f,extra=i3d+vggish")
    assert [f["name"] for f in a.data.features] == ["sa_tsp", "i3d", "vggish"]
    assert a.optim.lr == 5e-5 and a.model.num_queries == 10 and a.stage == "captioner_train"
    assert activitynet.get_config("predict").stage == "captioner_predict"


def test_light_head_reads_word_and_event_only():
    cell = CaptionCell(kind="light", vocab_size=7, d_model=8, rnn_size=8, word_dim=4)
    state = (jnp.zeros((2, 3, 8)), jnp.zeros((2, 3, 8)))
    tokens = jnp.zeros((2, 3), jnp.int32)
    feats = jnp.ones((2, 3, 8))
    variables = cell.init(jax.random.PRNGKey(0), state, tokens, feats, None, None, (4,))
    (h, c), logp = cell.apply(variables, state, tokens, feats, None, None, (4,))
    assert logp.shape == (2, 3, 7) and h.shape == (2, 3, 8)
    np.testing.assert_allclose(jnp.exp(logp).sum(-1), 1.0, rtol=1e-5)
    # LSTM input = [word (4), event (8)], no biases anywhere in the LSTM (PDVC bias=False).
    lstm = variables["params"]["lstm"]
    assert lstm["ih"]["kernel"].shape == (12, 32) and "bias" not in lstm["ih"]
