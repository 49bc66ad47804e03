"""The training objective of one batch: forward, matching per decoder layer, PDVC's losses.

Keys: `loss_ce`, `loss_bbox`, `loss_giou`, `loss_counter`, `loss_caption` for the last decoder
layer and the same with suffix `_<layer>` for the auxiliary layers (PDVC naming); the total
is `losses.weighted_total` with the configured weights (PDVC: same weights on every layer).

Mode "queries": Hungarian matching per layer (SciPy via `pure_callback`). Mode
"gt_proposals": queries built from the ground-truth events, query i matched to event i
(PDVC's GT-proposal mode; PDVC zeroes the localisation weights there).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from captioner_jax import decoding, losses, matcher
from captioner_jax.models.pdvc import PDVC

MODES = ("queries", "gt_proposals")


@dataclasses.dataclass(frozen=True)
class MatcherCosts:
    cost_class: float = 2.0
    cost_bbox: float = 0.0
    cost_giou: float = 4.0
    alpha: float = 0.25
    gamma: float = 2.0


def forward(model: PDVC, params, batch: dict, mode: str, train: bool, rng=None) -> dict:
    """model.apply on a batch in the given mode."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} not in {MODES}")
    proposals = batch["gt_boxes"] if mode == "gt_proposals" else None
    proposal_valid = batch["gt_valid"] if mode == "gt_proposals" else None
    rngs = {"dropout": rng} if train else {}
    return model.apply({"params": params}, batch["feats"], batch["feat_valid"],
                       batch["duration"], proposals, proposal_valid, train=train, rngs=rngs)


def matching_costs(out: dict, batch: dict, costs: MatcherCosts) -> jax.Array:
    """Mode "queries": the matching cost of every decoder layer, [layers, B, N, G]."""
    return jnp.stack([
        matcher.matching_cost(
            out["logits"][layer], out["boxes"][layer], batch["gt_boxes"],
            cost_class=costs.cost_class, cost_bbox=costs.cost_bbox, cost_giou=costs.cost_giou,
            alpha=costs.alpha, gamma=costs.gamma)
        for layer in range(out["logits"].shape[0])])


def assignments(out: dict, batch: dict, mode: str, costs: MatcherCosts) -> list[jax.Array]:
    """Per decoder layer: [B, N] ground-truth index of every query or -1."""
    num_layers, _, n = out["logits"].shape
    if mode == "gt_proposals":
        return [matcher.identity_assign(n, batch["gt_valid"])] * num_layers
    return [matcher.hungarian_assign(cost, batch["gt_valid"])
            for cost in matching_costs(out, batch, costs)]


def matched_captions(batch: dict, assignment: jax.Array):
    """Tokens [B, N, L] and token masks [B, N, L] of each query's matched caption."""
    idx = jnp.maximum(assignment, 0)[..., None]
    tokens = jnp.take_along_axis(batch["captions"], idx, axis=1)
    mask = jnp.take_along_axis(batch["caption_mask"], idx, axis=1) & (assignment >= 0)[..., None]
    return tokens, mask


def step_keys(rng):
    """A training step's (forward dropout key, caption dropout key): the one split that
    `compute_losses`, `train.make_training_forward` and the update on its outputs share."""
    fwd_rng, cap_rng = jax.random.split(rng)
    return fwd_rng, cap_rng


def compute_losses(model: PDVC, params, batch: dict, rng, *, mode: str, costs: MatcherCosts,
                   weights: dict[str, float], train: bool = True, assign=None,
                   skip_padding: bool = True):
    """-> (total loss, dict of every loss term, model outputs).

    `skip_padding`: see `decoding.caption_token_logprobs` (False: every query teacher-forced
    over every caption position; the same losses).

    `assign`: optional per-layer assignments ([B, N] each) solved outside this function
    (from `train.make_training_forward`'s costs); None matches here (`assignments`)."""
    fwd_rng, cap_rng = step_keys(rng)
    out = forward(model, params, batch, mode, train, fwd_rng)
    if assign is None:
        assign = assignments(out, batch, mode, costs)
    total, terms = losses_of_outputs(model, params, out, batch, cap_rng, assign, costs=costs,
                                     weights=weights, train=train, skip_padding=skip_padding)
    return total, terms, out


def losses_of_outputs(model: PDVC, params, out: dict, batch: dict, cap_rng, assign, *,
                      costs: MatcherCosts, weights: dict[str, float], train: bool = True,
                      skip_padding: bool = True):
    """The losses of `compute_losses` given the forward's outputs `out` (-> (total, terms)).

    `cap_rng` is the caption dropout key of `step_keys`; `assign` the per-layer assignments.
    `params` are read by the caption head only (its loop runs here), so the gradient of the
    total is this function's gradient in `params` plus the forward's pullback of its gradient
    in `out`."""
    num_layers = out["logits"].shape[0]
    # Teacher forcing of what the loss reads only (PDVC captions the matched queries up to the
    # batch's longest caption): padded steps and positions are skipped, not computed; the
    # (shared) caption head runs every decoder layer's captions in one loop.
    captions = [matched_captions(batch, assign[layer]) for layer in range(num_layers)]
    tok_logp = decoding.caption_token_logprobs(
        model, {"params": params}, out, [out["hs"][layer] for layer in range(num_layers)],
        list(out["caption_refs"]), [tokens for tokens, _ in captions],
        [mask[..., 1:] for _, mask in captions], train=train,
        dropout_key=[jax.random.fold_in(cap_rng, layer) for layer in range(num_layers)],
        skip_padding=skip_padding)
    terms = {}
    for layer in range(num_layers):
        suffix = "" if layer == num_layers - 1 else f"_{layer}"
        layer_terms = losses.set_losses(
            out["logits"][layer], out["boxes"][layer], out["counts"][layer], assign[layer],
            batch["gt_boxes"], batch["gt_valid"], focal_alpha=costs.alpha,
            focal_gamma=costs.gamma)
        layer_terms["loss_caption"] = losses.matched_caption_loss(
            tok_logp[layer], captions[layer][1][..., 1:], assign[layer])
        terms.update({k + suffix: v for k, v in layer_terms.items()})
    return losses.weighted_total(terms, weights), terms
