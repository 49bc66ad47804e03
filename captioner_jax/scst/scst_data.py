"""Host-side data helpers of the SCST trainer: validation split, reference subsets, token ids
to reward text, and the reward built from the config.

Reward text: captions are compared as the vocabulary's words (ids up to the first EOS joined by
single spaces, no trailing "."), both for the model's samples and for the GT sentences (which
go through `vocab.encode` first, so rare words become UNK on both sides). CIDEr-D document
frequencies come from the training references in the same form, one document per event.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from captioner_jax.scst.rewards import CaptionReward, caption_texts
from data_prep.infra import distributed, paths
from data_prep.infra.atomic_files import atomic_write_json, read_json


def split_validation(
    video_ids: Sequence[str], train_fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """(ids appended to training, ids kept for evaluation): a seeded random `train_fraction`
    of the validation videos (the SA-TSP report trained SCST on train + ~80% of val)."""
    if not 0.0 <= train_fraction < 1.0:
        raise ValueError(f"train_val_fraction must be in [0, 1), got {train_fraction}")
    ids = sorted(video_ids)
    order = np.random.default_rng(seed).permutation(len(ids))
    n_train = int(round(train_fraction * len(ids)))
    chosen = {ids[i] for i in order[:n_train]}
    return [v for v in ids if v in chosen], [v for v in ids if v not in chosen]


def write_reference_subsets(files: Sequence[str], keep: set[str], out_dir: str) -> list[str]:
    """Copies of the reference files restricted to `keep` (the official evaluator averages over
    every video of its references, so held-out evaluation needs references of those only).

    Returns the paths of the copies; process 0 writes them (only process 0 evaluates)."""
    out = []
    for i, path in enumerate(files):
        target = paths.join(out_dir, f"{i}_{paths.as_path(path).name}")
        if distributed.is_main_process():
            refs = read_json(path)
            atomic_write_json(target, {v: refs[v] for v in refs if v in keep})
        out.append(target)
    return out


def reference_texts(sentences: Sequence[str], vocab, max_len: int) -> list[str]:
    """GT sentences in reward form (see the module docstring)."""
    return caption_texts(vocab.encode_batch(list(sentences), max_len)[:, 1:], vocab)


class MeteorReward:
    """Per-pair METEOR of the evaluator's long-lived METEOR process, as a reward scorer."""

    def score(self, hypotheses, references) -> np.ndarray:
        from captioner_jax.evaluation.meteor import get_meteor

        return get_meteor().pair_scores(hypotheses, references)


def build_reward(scst_cfg, train_sentences: Sequence[Sequence[str]], vocab,
                 max_len: int) -> CaptionReward:
    """CIDEr-D (df from the training references) and/or METEOR, weighted by the config."""
    from captioner_jax.evaluation import CiderD

    scorers = {}
    w_cider = float(scst_cfg.cider_weight)
    w_meteor = float(scst_cfg.meteor_weight)
    if w_cider:
        docs = reference_texts([s for sents in train_sentences for s in sents], vocab, max_len)
        scorers["cider"] = (w_cider, CiderD.from_references([[d] for d in docs]))
    if w_meteor:
        scorers["meteor"] = (w_meteor, MeteorReward())
    if not scorers:
        raise ValueError("SCST reward: both cider_weight and meteor_weight are 0")
    return CaptionReward(scorers)
