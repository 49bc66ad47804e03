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

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax import lax
from jax.ad_checkpoint import checkpoint_name

from sa_tsp_jax.models.batch_norm import TSP_BN_EPS, TSP_BN_TORCH_MOMENTUM, TorchBatchNorm

# torchvision VideoResNet: kaiming_normal_(mode="fan_out", nonlinearity="relu"), i.e. an
# *untruncated* normal with variance 2 / fan_out.
conv_kernel_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")

MIDPLANE_RULES = ("tsp", "torchvision")


def midplanes(in_planes: int, out_planes: int) -> int:
    """Width of the factorised (2+1)D conv that matches a full 3x3x3 conv's parameter count."""
    return (in_planes * out_planes * 3 * 3 * 3) // (in_planes * 3 * 3 + 3 * out_planes)


CONV_IMPLS = ("factorised", "conv3d")

# What the backward pass of a BasicBlock reads from the forward (`R2Plus1D.remat`).
REMAT_POLICIES = ("none", "conv_outputs", "block")
CONV_OUTPUT = "conv_out"  # `checkpoint_name` of every convolution's output

# Below this many output positions per image a 2-D conv runs as explicit patches + one matmul
# (see `FactorisedConv`); measured crossover on XLA CPU between 8x8 and 14x14 outputs.
PATCHES_MAX_POSITIONS = 64


def _lax_conv2d(x, kernel, strides, padding):
    return lax.conv_general_dilated(x, kernel, strides, padding,
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _taps(x, kh, kw, strides, padding, out_hw):
    """The kh*kw strided windows of zero-padded x [N, H, W, C], each [N, Ho, Wo, C]."""
    (sh, sw), ((ph0, ph1), (pw0, pw1)), (ho, wo) = strides, padding, out_hw
    xp = jnp.pad(x, ((0, 0), (ph0, ph1), (pw0, pw1), (0, 0)))
    return [lax.slice(xp, (0, i, j, 0), (xp.shape[0], i + sh * (ho - 1) + 1,
                                         j + sw * (wo - 1) + 1, xp.shape[3]), (1, sh, sw, 1))
            for i in range(kh) for j in range(kw)]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv2d(x, kernel, strides, padding):
    """NHWC x HWIO 2-D convolution, no bias; the kernel gradient as kh*kw matmuls.

    XLA CPU computes a conv's kernel gradient as a convolution whose window is the whole
    image (56x56 in R(2+1)D's first stage): measured 10-20x slower than the same sums as one
    [O, N*Ho*Wo] @ [N*Ho*Wo, C] matmul per tap. The input gradient stays XLA's own.
    """
    return _lax_conv2d(x, kernel, strides, padding)


def _conv2d_fwd(x, kernel, strides, padding):
    return _lax_conv2d(x, kernel, strides, padding), (x, kernel)


def _conv2d_bwd(strides, padding, res, dy):
    x, kernel = res
    kh, kw, c, o = kernel.shape
    _, vjp_x = jax.vjp(lambda x_: _lax_conv2d(x_, kernel, strides, padding), x)
    (dx,) = vjp_x(dy)
    taps = _taps(x, kh, kw, strides, padding, dy.shape[1:3])
    # dy^T once ([O, N*Ho*Wo]), then per tap a plain [O, K] @ [K, C] matmul: contracting
    # "nhwc,nhwo->co" directly makes XLA transpose every tap instead (kh*kw copies of the
    # input; measured 2x slower on R(2+1)D's 56x56 stage, see benchmarks/conv_kernel_grad.py).
    dy_t = dy.reshape(-1, o).T
    dk = jnp.stack([jnp.matmul(dy_t, t.reshape(-1, c), preferred_element_type=jnp.float32).T
                    for t in taps]).reshape(kh, kw, c, o).astype(kernel.dtype)
    return dx, dk


_conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


def _conv2d_patches(x, kernel, strides, padding):
    """The same 2-D convolution as (kh*kw strided slices concatenated on channels) @ kernel.

    [N, H, W, C] x [kh, kw, C, O] -> [N, Ho, Wo, O]. Exact up to float summation order: the
    concatenation order (i, j, c) is the row-major order of the kernel's first three axes.
    """
    kh, kw, c, o = kernel.shape
    (sh, sw), ((ph0, ph1), (pw0, pw1)) = strides, padding
    ho = (x.shape[1] + ph0 + ph1 - kh) // sh + 1
    wo = (x.shape[2] + pw0 + pw1 - kw) // sw + 1
    taps = _taps(x, kh, kw, strides, padding, (ho, wo))
    patches = taps[0] if len(taps) == 1 else jnp.concatenate(taps, axis=-1)
    return jnp.einsum("nhwk,ko->nhwo", patches, kernel.reshape(kh * kw * c, o))


def conv2d_for_shape(x, kernel, strides, padding):
    """The 2-D convolution [N, H, W, C] x [kh, kw, C, O] as `FactorisedConv` runs it: explicit
    patches + one matmul (`_conv2d_patches`) for fewer than PATCHES_MAX_POSITIONS output
    positions per image or a kernel larger than the input, else `_conv2d`."""
    out = [(n + p0 + p1 - k) // s + 1 for n, k, s, (p0, p1)
           in zip(x.shape[1:3], kernel.shape[:2], strides, padding)]
    small = (out[0] * out[1] < PATCHES_MAX_POSITIONS
             or x.shape[1] < kernel.shape[0] or x.shape[2] < kernel.shape[1])
    return (_conv2d_patches if small else _conv2d)(x, kernel, strides, padding)


class FactorisedConv(nn.Module):
    """A bias-free Conv3d whose kernel is degenerate in time or in space, lowered as 2-D.

    Same parameter as `nn.Conv` (name `kernel`, shape (kt, kh, kw, in, out), same init), so
    checkpoints and the PyTorch importer do not see the difference. Input/output channels-last
    [B, T, H, W, C].

    Why (measured on a 2-core AVX2 machine, XLA CPU, jax 0.10): a 3-D convolution with a
    (1,k,k) or (k,1,1) kernel is lowered as a generic 3-D convolution, slower than the
    equivalent 2-D one in the forward pass and much slower in the gradients (the input gradient
    of a strided (1,3,3) conv: 15x). And where a kernel is larger than its input (3x3 over
    R(2+1)D-34's 2x2 last stage at 32x32 clips, 3 taps over 1-2 frames) XLA swaps the operands
    into a convolution that runs as a naive loop: 1-2 s per conv of a 25 s train step. So:
      kt == 1 (spatial; `conv3d` pads time by 0): a 2-D conv over [B*T, H, W, C];
      kh == kw == 1 (temporal, no spatial padding): a 2-D conv with a (kt, 1) kernel over
        [B, T, H*W, C] (a spatial stride is a strided slice first: 1x1 taps);
      either of them with few output positions (< PATCHES_MAX_POSITIONS per image) or a kernel
        larger than the input: explicit patches + one matmul (`_conv2d_patches`);
      otherwise (a full 3-D kernel, unused by R(2+1)D) the 3-D conv itself.
    All are the same linear map (tests/test_sa_tsp_fast_conv.py); `impl="conv3d"` keeps the
    plain 3-D convolution (the reference).
    """

    features: int
    kernel_size: tuple[int, int, int]
    strides: tuple[int, int, int] = (1, 1, 1)
    padding: Any = "VALID"  # "VALID" or ((pt, pt), (ph, ph), (pw, pw))
    dtype: Any = jnp.float32
    impl: str = "factorised"

    @nn.compact
    def __call__(self, x):
        if self.impl not in CONV_IMPLS:
            raise ValueError(f"conv impl must be one of {CONV_IMPLS}, got {self.impl!r}")
        kt, kh, kw = self.kernel_size
        st, sh, sw = self.strides
        pad = ((0, 0),) * 3 if self.padding == "VALID" else tuple(map(tuple, self.padding))
        kernel = self.param("kernel", conv_kernel_init, (kt, kh, kw, x.shape[-1], self.features),
                            jnp.float32).astype(self.dtype)
        x = x.astype(self.dtype)
        b, t, h, w, c = x.shape

        if self.impl == "factorised" and kt == 1 and st == 1 and pad[0] == (0, 0):
            y = conv2d_for_shape(x.reshape(b * t, h, w, c), kernel[0], (sh, sw), pad[1:])
            y = y.reshape(b, t, *y.shape[1:])
        elif self.impl == "factorised" and kh == kw == 1 and pad[1:] == ((0, 0), (0, 0)):
            if sh != 1 or sw != 1:
                x = x[:, :, ::sh, ::sw]
                h, w = x.shape[2:4]
            y = conv2d_for_shape(x.reshape(b, t, h * w, c), kernel[:, 0], (st, 1),
                                 (pad[0], (0, 0)))
            y = y.reshape(b, y.shape[1], h, w, self.features)
        else:
            y = lax.conv_general_dilated(x, kernel, self.strides, pad,
                                         dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))
        return checkpoint_name(y, CONV_OUTPUT)  # what remat="conv_outputs" keeps


def _conv(features: int, kernel, strides, padding, dtype, name: str,
          impl: str = "factorised") -> FactorisedConv:
    return FactorisedConv(features, tuple(kernel), tuple(strides), padding, dtype, impl,
                          name=name)


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
    conv_impl: str = "factorised"

    @nn.compact
    def __call__(self, x, train: bool):
        s = self.stride
        x = _conv(self.mid_planes, (1, 3, 3), (1, s, s), ((0, 0), (1, 1), (1, 1)), self.dtype,
                  "spatial", self.conv_impl)(x)
        x = TorchBatchNorm(self.bn_momentum, self.bn_eps, self.dtype, name="mid_bn")(x, train)
        x = nn.relu(x)
        return _conv(self.out_planes, (3, 1, 1), (s, 1, 1), ((1, 1), (0, 0), (0, 0)), self.dtype,
                     "temporal", self.conv_impl)(x)


class BasicBlock(nn.Module):
    """R(2+1)D BasicBlock (expansion 1). [B,T,H,W,Cin] -> [B,T/s,H/s,W/s,planes]."""

    planes: int
    stride: int = 1
    midplane_rule: str = "tsp"
    bn_eps: float = TSP_BN_EPS
    bn_momentum: float = TSP_BN_TORCH_MOMENTUM
    dtype: Any = jnp.float32
    conv_impl: str = "factorised"

    @nn.compact
    def __call__(self, x, train: bool):
        in_planes = x.shape[-1]
        mid1 = midplanes(in_planes, self.planes)
        mid2 = mid1 if self.midplane_rule == "torchvision" else midplanes(self.planes, self.planes)
        bn = lambda name: TorchBatchNorm(self.bn_momentum, self.bn_eps, self.dtype, name=name)
        conv = lambda mid, stride, name: Conv2Plus1D(
            self.planes, mid, stride, self.bn_eps, self.bn_momentum, self.dtype, self.conv_impl,
            name=name
        )
        shortcut = x
        y = nn.relu(bn("bn1")(conv(mid1, self.stride, "conv1")(x, train), train))
        y = bn("bn2")(conv(mid2, 1, "conv2")(y, train), train)
        if self.stride != 1 or in_planes != self.planes:
            s = self.stride
            shortcut = _conv(self.planes, (1, 1, 1), (s, s, s), "VALID", self.dtype,
                             "downsample", self.conv_impl)(x)
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
      conv_impl: "factorised" (the degenerate 3-D convolutions as 2-D ones, faster on XLA CPU,
        same parameters and numerics) or "conv3d" (plain 3-D convolutions, the reference).
      remat: what each BasicBlock's backward pass reads from its forward (`jax.checkpoint`;
        the same gradients, more arithmetic, and less activation memory where the backend's
        scheduler keeps the recomputation in the backward pass: not measured so on XLA CPU,
        see the README): "none" keeps every intermediate; "conv_outputs" keeps the
        convolutions' outputs and recomputes the BatchNorms and ReLUs (elementwise) from them;
        "block" keeps only each block's input and recomputes the whole block, convolutions
        included (1.2x the FLOPs of a training step: benchmarks/encoder_remat.py), for the
        largest batch per device. Parameters and their names do not change.
    """

    stage_sizes: Sequence[int] = (3, 4, 6, 3)
    widths: Sequence[int] = (64, 128, 256, 512)
    stem_width: int = 45
    midplane_rule: str = "tsp"
    bn_eps: float = TSP_BN_EPS
    bn_momentum: float = TSP_BN_TORCH_MOMENTUM
    dtype: Any = jnp.float32
    conv_impl: str = "factorised"
    remat: str = "none"

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
        if self.remat not in REMAT_POLICIES:
            raise ValueError(f"remat must be one of {REMAT_POLICIES}, got {self.remat!r}")
        block_cls = BasicBlock
        if self.remat != "none":
            policy = (jax.checkpoint_policies.save_only_these_names(CONV_OUTPUT)
                      if self.remat == "conv_outputs" else None)
            # argnum 2 = `train` (Flax counts `self` as 0): a Python bool, not traced.
            block_cls = nn.remat(BasicBlock, static_argnums=(2,), policy=policy)
        bn = lambda name: TorchBatchNorm(self.bn_momentum, self.bn_eps, self.dtype, name=name)
        x = clips.astype(self.dtype)
        x = _conv(self.stem_width, (1, 7, 7), (1, 2, 2), ((0, 0), (3, 3), (3, 3)), self.dtype,
                  "stem_spatial", self.conv_impl)(x)
        x = nn.relu(bn("stem_spatial_bn")(x, train))
        x = _conv(self.widths[0], (3, 1, 1), (1, 1, 1), ((1, 1), (0, 0), (0, 0)), self.dtype,
                  "stem_temporal", self.conv_impl)(x)
        x = nn.relu(bn("stem_temporal_bn")(x, train))
        for stage, (num_blocks, width) in enumerate(zip(self.stage_sizes, self.widths)):
            for block in range(num_blocks):
                stride = 2 if (stage > 0 and block == 0) else 1
                x = block_cls(width, stride, self.midplane_rule, self.bn_eps, self.bn_momentum,
                               self.dtype, self.conv_impl,
                               name=f"layer{stage + 1}_{block}")(x, train)
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
