"""The SA-TSP model: R(2+1)D backbone + action, temporal-region and semantic-concept heads.

Heads (docs/reference.md section 2, TSP's `fc1`/`fc2`, and the SA-TSP report):
  action_head:  Dense(feature -> num_actions) on the clip feature.
  region_head:  Dense(concat(clip feature, GVF) -> 2) ("Action" / "No action"); with
                `use_gvf=False` it sees the clip feature alone (TSP's `--global-video-features
                None` ablation).
  concept_head: Dense(feature -> num_concepts); the sigmoid lives in the loss / metrics
                (the Asymmetric Loss takes logits). Absent when num_concepts == 0.
All heads: weights N(0, 0.01), zero bias (TSP init); float32.
"""
from __future__ import annotations

import jax.numpy as jnp
from flax import linen as nn

from sa_tsp_jax.models.r2plus1d import R2Plus1D

head_kernel_init = nn.initializers.normal(stddev=0.01)


def _head(features: int, name: str) -> nn.Dense:
    return nn.Dense(features, kernel_init=head_kernel_init, bias_init=nn.initializers.zeros,
                    dtype=jnp.float32, param_dtype=jnp.float32, name=name)


class SATSPModel(nn.Module):
    """Backbone + heads.

    Attributes:
      backbone: the R(2+1)D encoder (params under "backbone").
      num_actions: action classes (200 on ActivityNet); 0 disables the head.
      num_regions: temporal-region classes (2).
      num_concepts: concept vocabulary size; 0 disables the head.
      use_gvf: whether the region head also sees the global video feature.
    """

    backbone: R2Plus1D
    num_actions: int = 200
    num_regions: int = 2
    num_concepts: int = 0
    use_gvf: bool = True

    @nn.compact
    def __call__(self, clips: jnp.ndarray, gvf: jnp.ndarray | None = None,
                 train: bool = False) -> dict[str, jnp.ndarray]:
        """clips [B,T,H,W,3], gvf [B,G] (required iff use_gvf) -> dict of float32 arrays:
        `features` [B,C], `action_logits` [B,A], `region_logits` [B,2], `concept_logits` [B,N]."""
        features = self.backbone(clips, train=train)
        out = {"features": features}
        if self.num_actions > 0:
            out["action_logits"] = _head(self.num_actions, "action_head")(features)
        if self.num_regions > 0:
            region_in = features
            if self.use_gvf:
                if gvf is None:
                    raise ValueError("use_gvf=True but no global video feature was given")
                region_in = jnp.concatenate([features, gvf.astype(jnp.float32)], axis=-1)
            out["region_logits"] = _head(self.num_regions, "region_head")(region_in)
        if self.num_concepts > 0:
            out["concept_logits"] = _head(self.num_concepts, "concept_head")(features)
        return out
