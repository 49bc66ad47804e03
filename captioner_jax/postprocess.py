"""PDVC's post-processing of one video's predictions into submission entries.

PDVC (`pdvc.py` PostProcess + `eval_utils.py` reranking, ActivityNet LSTM-DSA config):
  * queries ordered by proposal score p = sigmoid(class logit);
  * boxes (centre, length) -> (start, end), clipped to [0, 1], times the duration [s];
  * sentence = words up to the first EOS + "."; sentence score = sum of the word log-probs;
  * event count = max(argmax(counter logits), 1);
  * joint score = alpha * sentence_score / (num_words ** temperature + 1e-5) + p
    (alpha = `ec_alpha` 1.0, temperature 2), keep the `count` best, then sort by time.
Without reranking (GT proposals, or a counter loss weight of 0) every valid query is kept,
sorted by time.
"""
from __future__ import annotations

import numpy as np


def video_predictions(
    probs: np.ndarray,
    boxes: np.ndarray,
    count_logits: np.ndarray | None,
    tokens: np.ndarray,
    logprobs: np.ndarray,
    duration: float,
    vocab,
    *,
    query_valid: np.ndarray | None = None,
    rerank: bool = True,
    alpha: float = 1.0,
    temperature: float = 2.0,
) -> list[dict]:
    """Submission entries of one video.

    Args:
      probs [N]; boxes [N, 2] (centre, length) in [0, 1] units; count_logits [C + 1];
      tokens, logprobs [N, L] from `decoding.decode_tokens`; duration [s]; vocab with
      `decode(ids)`; query_valid [N] (False for padded GT proposals).
    Returns:
      [{"sentence", "timestamp": [start_s, end_s], "proposal_score", "sentence_score",
        "joint_score", "query_id"}] in time order.
    """
    probs = np.asarray(probs, np.float64)
    n = len(probs)
    valid = np.ones(n, bool) if query_valid is None else np.asarray(query_valid, bool)
    boxes = np.asarray(boxes, np.float64)
    xy = np.stack([boxes[:, 0] - 0.5 * boxes[:, 1], boxes[:, 0] + 0.5 * boxes[:, 1]], -1)
    xy = np.clip(xy, 0.0, 1.0) * float(duration)
    tokens = np.asarray(tokens)
    word_mask = tokens > 0
    # Only words before the first EOS count (tokens after EOS are already 0).
    cap_scores = (np.asarray(logprobs, np.float64) * word_mask).sum(-1)
    order = np.argsort(-probs, kind="stable")
    entries = []
    for q in order:
        if not valid[q]:
            continue
        sentence = vocab.decode(tokens[q])
        entries.append({
            "sentence": sentence,
            "timestamp": [float(xy[q, 0]), float(xy[q, 1])],
            "proposal_score": float(probs[q]),
            "sentence_score": float(cap_scores[q]),
            "query_id": int(q),
        })
    for e in entries:
        words = len(e["sentence"].split())
        e["joint_score"] = alpha * e["sentence_score"] / (words**temperature + 1e-5) + e[
            "proposal_score"]
    if rerank and count_logits is not None:
        count = max(int(np.argmax(count_logits)), 1)
        entries = sorted(entries, key=lambda e: e["joint_score"], reverse=True)[:count]
    return sorted(entries, key=lambda e: e["timestamp"])


def submission(results: dict[str, list[dict]], details: str = "") -> dict:
    """The official submission layout around per-video entries."""
    return {
        "version": "VERSION 1.0",
        "results": results,
        "external_data": {"used": True, "details": details or "features from pretrained encoders"},
    }
