"""`build_decoder` for the PDVC captioner: events = given proposals (GT segments in SCST).

SCST fine-tunes the caption of each event given its segment (the report's "GT proposals"
setting; PDVC's `gt_proposals` mode): the model runs the base encoder and the deformable
transformer once on the video features with queries built from the proposals, and the caption
head decodes every event. For K samples per event, the per-event decoder states and references
are repeated K times along the event axis ([B, E] -> [B, E*K], event-major), so the flattened
rows (video-major, then event, then sample) line up with `tile_carry`'s layout.

Deliberate choice: SCST runs the model deterministically (no dropout) both when sampling and
when re-scoring the samples for the gradient, so the log-probabilities that are pushed are
exactly those of the policy that drew the samples (Rennie et al. sample from the test-time
model as well).

Batch inputs: the caption pipeline's batch (captioner_jax.data.pipeline), of which this uses
  feats [B, T, C] float32, feat_valid [B, T] bool, duration [B] float32 [s],
  gt_boxes [B, E, 2] (center, length) / duration, gt_valid [B, E] bool.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from captioner_jax.decoding import caption_decoder
from captioner_jax.models.pdvc import PDVC
from captioner_jax.scst.sampler import BuildDecoder, MakeDecoder

INPUT_KEYS = ("feats", "feat_valid", "duration", "gt_boxes", "gt_valid")


def pdvc_build_decoder(
    model: PDVC,
    other_variables: dict[str, Any] | None = None,
    *,
    backbone_grad: bool = True,
) -> BuildDecoder:
    """`build_decoder(params, inputs) -> make(k)` for `captioner_jax.scst.sampler`.

    Args:
      model: the PDVC module (same fields as the XE-trained model).
      other_variables: non-"params" collections, if the model has any (kept fixed).
      backbone_grad: False stops gradients at the transformer's outputs (memory, event
        states): exact when only the caption head is trained (the default recipe), and it
        spares the backward pass (and its compile time) through the deformable transformer.
    """

    def build(params, inputs) -> MakeDecoder:
        missing = [k for k in INPUT_KEYS if k not in inputs]
        if missing:
            raise KeyError(f"SCST batch lacks {missing}; needs {INPUT_KEYS}")
        variables = {"params": params, **(other_variables or {})}
        out = model.apply(
            variables, inputs["feats"], inputs["feat_valid"], inputs["duration"],
            proposals=inputs["gt_boxes"], proposal_valid=inputs["gt_valid"], train=False,
        )
        if not backbone_grad:
            out = jax.lax.stop_gradient(out)

        def make(k: int):
            hs, refs = out["hs"][-1], out["caption_refs"][-1]
            if k > 1:
                hs, refs = jnp.repeat(hs, k, axis=1), jnp.repeat(refs, k, axis=1)
            return caption_decoder(model, variables, out, hs, refs)

        return make

    return build


def sample_validity(proposal_valid, num_samples: int):
    """bool [B*E*K]: which flattened sample rows belong to real (non-padding) events."""
    return jnp.repeat(proposal_valid, num_samples, axis=1).reshape(-1)
