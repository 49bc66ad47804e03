"""The factorised (2-D / patches) lowering of R(2+1)D's convolutions equals the 3-D convolution.

`FactorisedConv(impl="factorised")` rewrites (1,k,k) and (k,1,1) Conv3d as 2-D convolutions or
as patches + matmul depending on the size; each case below is checked against
`impl="conv3d"` (a plain `lax.conv_general_dilated` over NDHWC) with the same kernel, for the
output and for both gradients, and the backbone's parameter tree is the same for both.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sa_tsp_jax.models import r2plus1d
from sa_tsp_jax.models.r2plus1d import FactorisedConv, make_backbone

SAME_SPATIAL = ((0, 0), (1, 1), (1, 1))
SAME_TEMPORAL = ((1, 1), (0, 0), (0, 0))

# (name, input [B, T, H, W, C], out features, kernel, strides, padding)
CASES = [
    ("spatial 2-D conv", (2, 3, 10, 10, 4), 5, (1, 3, 3), (1, 1, 1), SAME_SPATIAL),
    ("spatial strided 2-D conv", (2, 3, 20, 20, 4), 5, (1, 3, 3), (1, 2, 2), SAME_SPATIAL),
    ("spatial patches", (2, 3, 4, 4, 4), 5, (1, 3, 3), (1, 1, 1), SAME_SPATIAL),
    ("spatial strided patches", (2, 2, 5, 5, 4), 5, (1, 3, 3), (1, 2, 2), SAME_SPATIAL),
    ("spatial kernel > input", (2, 2, 2, 2, 4), 5, (1, 3, 3), (1, 1, 1), SAME_SPATIAL),
    ("stem 7x7 stride 2", (1, 2, 18, 18, 3), 4, (1, 7, 7), (1, 2, 2), ((0, 0), (3, 3), (3, 3))),
    ("temporal 2-D conv", (2, 8, 3, 3, 4), 5, (3, 1, 1), (1, 1, 1), SAME_TEMPORAL),
    ("temporal strided 2-D conv", (2, 9, 4, 4, 4), 5, (3, 1, 1), (2, 1, 1), SAME_TEMPORAL),
    ("temporal patches, 2 frames", (2, 2, 3, 3, 4), 5, (3, 1, 1), (1, 1, 1), SAME_TEMPORAL),
    ("temporal strided, 1 frame", (2, 1, 3, 3, 4), 5, (3, 1, 1), (2, 1, 1), SAME_TEMPORAL),
    ("downsample 1x1x1 stride 2", (2, 4, 6, 6, 4), 5, (1, 1, 1), (2, 2, 2), "VALID"),
    ("downsample odd sizes", (2, 3, 5, 5, 4), 5, (1, 1, 1), (2, 2, 2), "VALID"),
]


@pytest.mark.parametrize("name,shape,features,kernel,strides,padding", CASES,
                         ids=[c[0] for c in CASES])
def test_factorised_conv_equals_conv3d(name, shape, features, kernel, strides, padding):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)
    mods = {impl: FactorisedConv(features, kernel, strides, padding, impl=impl)
            for impl in ("factorised", "conv3d")}
    params = mods["conv3d"].init(jax.random.key(0), x)
    # Same parameter name, shape and initial value.
    jax.tree.map(np.testing.assert_array_equal,
                 mods["factorised"].init(jax.random.key(0), x), params)
    out_shape = jax.eval_shape(mods["conv3d"].apply, params, x).shape
    cot = jnp.asarray(rng.normal(size=out_shape), jnp.float32)

    @jax.jit
    def both(params, x, cot):  # one compilation per case
        res = {}
        for impl, mod in mods.items():
            y, vjp = jax.vjp(lambda p, x, mod=mod: mod.apply(p, x), params, x)
            res[impl] = (y, *vjp(cot))
        return res

    results = both(params, x, cot)
    want, got = results["conv3d"], results["factorised"]
    assert got[0].shape == want[0].shape
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        # float32 sums in another order: error relative to the tensor's scale (a wrong tap,
        # stride or padding gives O(1)).
        scale = float(jnp.max(jnp.abs(w)))
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=0, atol=2e-6 * scale)


def test_patches_path_is_taken_for_small_outputs(monkeypatch):
    """The cases above cover both lowerings: count the calls of the patches one."""
    calls = []
    real = r2plus1d._conv2d_patches
    monkeypatch.setattr(r2plus1d, "_conv2d_patches",
                        lambda *a: calls.append(a[0].shape) or real(*a))
    x = jnp.zeros((1, 2, 2, 2, 4))
    FactorisedConv(5, (1, 3, 3), padding=SAME_SPATIAL).init(jax.random.key(0), x)
    assert calls == [(2, 2, 2, 4)]
    calls.clear()
    x = jnp.zeros((1, 2, 10, 10, 4))
    FactorisedConv(5, (1, 3, 3), padding=SAME_SPATIAL).init(jax.random.key(0), x)
    assert calls == []


def test_backbone_parameter_tree_independent_of_impl():
    """Checkpoints and the TSP importer see the same tree (the output equality of the whole
    backbone against PyTorch is tests/test_sa_tsp_import.py's parity test)."""
    x = jax.ShapeDtypeStruct((1, 4, 16, 16, 3), jnp.float32)
    fast, ref = (make_backbone("small", conv_impl=impl) for impl in ("factorised", "conv3d"))
    assert jax.eval_shape(fast.init, jax.random.key(0), x) == \
        jax.eval_shape(ref.init, jax.random.key(0), x)
    with pytest.raises(ValueError, match="conv impl"):
        jax.eval_shape(make_backbone("small", conv_impl="winograd").init, jax.random.key(0), x)
