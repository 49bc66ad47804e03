"""R(2+1)D video backbone (torchvision `VideoResNet` / TSP layout) in Flax linen.

Input: clips [B, T, H, W, 3], channels-last, already normalised (see the TSP transform in
docs/reference.md section 2). Output: globally average-pooled features [B, C] (C = 512 for
R(2+1)D-18/34), float32.

Layout (docs/reference.md section 2), no conv biases anywhere:
  stem: Conv 3->45 k(1,7,7) s(1,2,2) p(0,3,3), BN, ReLU; Conv 45->64 k(3,1,1) p(1,0,0), BN, ReLU
  4 stages of BasicBlocks with Conv2Plus1D(in, out, mid, s):
     spatial k(1,3,3) s(1,s,s) p(0,1,1) -> BN(mid) -> ReLU -> temporal k(3,1,1) s(s,1,1) p(1,0,0)
  block: conv1 -> BN -> ReLU -> conv2 -> BN -> + shortcut -> ReLU; the shortcut of the first
  block of stages 2-4 is Conv 1x1x1 stride 2 + BN.

Mid-plane rule: `mid = floor(in * out * 27 / (9 * in + 3 * out))`. "tsp" computes it per conv
from that conv's own (in, out); "torchvision" reuses the block's conv1 value for conv2 (they
differ only in the first block of stages 2-4). TSP checkpoints use "tsp".

Parameter names (used by `sa_tsp_jax.import_torch`):
  stem_spatial, stem_spatial_bn, stem_temporal, stem_temporal_bn,
  layer{L}_{B}/{conv1,conv2}/{spatial,mid_bn,temporal}, layer{L}_{B}/{bn1,bn2},
  layer{L}_0/{downsample,downsample_bn}.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
from flax import linen as nn

from sa_tsp_jax.models.batch_norm import TSP_BN_EPS, TSP_BN_TORCH_MOMENTUM, TorchBatchNorm

# torchvision VideoResNet: kaiming_normal_(mode="fan_out", nonlinearity="relu"), i.e. an
# *untruncated* normal with variance 2 / fan_out.
conv_kernel_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")

MIDPLANE_RULES = ("tsp", "torchvision")


def midplanes(in_planes: int, out_planes: int) -> int:
    """Width of the factorised (2+1)D conv that matches a full 3x3x3 conv's parameter count."""
    return (in_planes * out_planes * 3 * 3 * 3) // (in_planes * 3 * 3 + 3 * out_planes)


def _conv(features: int, kernel, strides, padding, dtype, name: str) -> nn.Conv:
    return nn.Conv(
        features,
        kernel_size=kernel,
        strides=strides,
        padding=padding,
        use_bias=False,
        dtype=dtype,
        param_dtype=jnp.float32,
        kernel_init=conv_kernel_init,
        name=name,
    )


class Conv2Plus1D(nn.Module):
    """Spatial (1x3x3) conv -> BN -> ReLU -> temporal (3x1x1) conv.

    [B, T, H, W, Cin] -> [B, T/s, H/s, W/s, out_planes].
    """

    out_planes: int
    mid_planes: int
    stride: int = 1
    bn_eps: float = TSP_BN_EPS
    bn_momentum: float = TSP_BN_TORCH_MOMENTUM
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        s = self.stride
        x = _conv(self.mid_planes, (1, 3, 3), (1, s, s), ((0, 0), (1, 1), (1, 1)), self.dtype,
                  "spatial")(x)
        x = TorchBatchNorm(self.bn_momentum, self.bn_eps, self.dtype, name="mid_bn")(x, train)
        x = nn.relu(x)
        return _conv(self.out_planes, (3, 1, 1), (s, 1, 1), ((1, 1), (0, 0), (0, 0)), self.dtype,
                     "temporal")(x)


class BasicBlock(nn.Module):
    """R(2+1)D BasicBlock (expansion 1). [B,T,H,W,Cin] -> [B,T/s,H/s,W/s,planes]."""

    planes: int
    stride: int = 1
    midplane_rule: str = "tsp"
    bn_eps: float = TSP_BN_EPS
    bn_momentum: float = TSP_BN_TORCH_MOMENTUM
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        in_planes = x.shape[-1]
        mid1 = midplanes(in_planes, self.planes)
        mid2 = mid1 if self.midplane_rule == "torchvision" else midplanes(self.planes, self.planes)
        bn = lambda name: TorchBatchNorm(self.bn_momentum, self.bn_eps, self.dtype, name=name)
        conv = lambda mid, stride, name: Conv2Plus1D(
            self.planes, mid, stride, self.bn_eps, self.bn_momentum, self.dtype, name=name
        )
        shortcut = x
        y = nn.relu(bn("bn1")(conv(mid1, self.stride, "conv1")(x, train), train))
        y = bn("bn2")(conv(mid2, 1, "conv2")(y, train), train)
        if self.stride != 1 or in_planes != self.planes:
            s = self.stride
            shortcut = _conv(self.planes, (1, 1, 1), (s, s, s), "VALID", self.dtype,
                             "downsample")(x)
            shortcut = bn("downsample_bn")(shortcut, train)
        return nn.relu(y + shortcut.astype(y.dtype))


class R2Plus1D(nn.Module):
    """R(2+1)D backbone. [B, T, H, W, 3] -> pooled features [B, widths[-1]] float32.

    Attributes:
      stage_sizes: blocks per stage ((3,4,6,3) = R(2+1)D-34, (2,2,2,2) = R(2+1)D-18).
      widths: output channels per stage (the stem outputs widths[0]).
      stem_width: channels of the stem's spatial conv (torchvision hard-codes 45).
      midplane_rule: "tsp" (per conv) or "torchvision" (per block).
      dtype: compute dtype (bfloat16 for speed); parameters are always float32.
    """

    stage_sizes: Sequence[int] = (3, 4, 6, 3)
    widths: Sequence[int] = (64, 128, 256, 512)
    stem_width: int = 45
    midplane_rule: str = "tsp"
    bn_eps: float = TSP_BN_EPS
    bn_momentum: float = TSP_BN_TORCH_MOMENTUM
    dtype: Any = jnp.float32

    @property
    def feature_dim(self) -> int:
        return self.widths[-1]

    @nn.compact
    def __call__(self, clips: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        if self.midplane_rule not in MIDPLANE_RULES:
            raise ValueError(f"midplane_rule must be one of {MIDPLANE_RULES}, "
                             f"got {self.midplane_rule!r}")
        if clips.ndim != 5 or clips.shape[-1] != 3:
            raise ValueError(f"clips must be [B, T, H, W, 3], got shape {clips.shape}")
        bn = lambda name: TorchBatchNorm(self.bn_momentum, self.bn_eps, self.dtype, name=name)
        x = clips.astype(self.dtype)
        x = _conv(self.stem_width, (1, 7, 7), (1, 2, 2), ((0, 0), (3, 3), (3, 3)), self.dtype,
                  "stem_spatial")(x)
        x = nn.relu(bn("stem_spatial_bn")(x, train))
        x = _conv(self.widths[0], (3, 1, 1), (1, 1, 1), ((1, 1), (0, 0), (0, 0)), self.dtype,
                  "stem_temporal")(x)
        x = nn.relu(bn("stem_temporal_bn")(x, train))
        for stage, (num_blocks, width) in enumerate(zip(self.stage_sizes, self.widths)):
            for block in range(num_blocks):
                stride = 2 if (stage > 0 and block == 0) else 1
                x = BasicBlock(width, stride, self.midplane_rule, self.bn_eps, self.bn_momentum,
                               self.dtype, name=f"layer{stage + 1}_{block}")(x, train)
        # AdaptiveAvgPool3d(1) + flatten, accumulated in float32.
        return jnp.mean(x.astype(jnp.float32), axis=(1, 2, 3))


VARIANTS: dict[str, dict] = {
    "r2plus1d_34": dict(stage_sizes=(3, 4, 6, 3), widths=(64, 128, 256, 512), stem_width=45),
    "r2plus1d_18": dict(stage_sizes=(2, 2, 2, 2), widths=(64, 128, 256, 512), stem_width=45),
    # CPU tests and smoke runs: one block per stage, 1/8 of the width.
    "small": dict(stage_sizes=(1, 1, 1, 1), widths=(8, 16, 32, 64), stem_width=6),
}


def make_backbone(variant: str = "r2plus1d_34", midplane_rule: str = "tsp",
                  dtype: Any = jnp.float32, **overrides) -> R2Plus1D:
    """Backbone factory by variant name ("r2plus1d_34", "r2plus1d_18", "small")."""
    if variant not in VARIANTS:
        raise KeyError(f"unknown R(2+1)D variant {variant!r}; known: {sorted(VARIANTS)}")
    kwargs = dict(VARIANTS[variant], midplane_rule=midplane_rule, dtype=dtype)
    kwargs.update(overrides)
    return R2Plus1D(**kwargs)
