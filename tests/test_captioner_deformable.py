"""Deformable attention against a straightforward loop reference with explicit interpolation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from captioner_jax.models import deformable_attention as da


def _loop_reference(value, lengths, locs, weights, padding):
    """Loops over batch, query, head, level, point; linear interpolation written out."""
    b_n, s, h_n, dh = value.shape
    _, q_n, _, l_n, p_n = locs.shape
    out = np.zeros((b_n, q_n, h_n, dh))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for b in range(b_n):
        for q in range(q_n):
            for h in range(h_n):
                for lv in range(l_n):
                    t_len = lengths[lv]
                    for p in range(p_n):
                        x = locs[b, q, h, lv, p] * t_len - 0.5
                        if padding == "border":
                            x = min(max(x, 0.0), t_len - 1.0)
                        left = int(np.floor(x))
                        right = left + 1
                        frac = x - left
                        sample = np.zeros(dh)
                        for idx, w in ((left, 1.0 - frac), (right, frac)):
                            if 0 <= idx < t_len:
                                sample += w * value[b, starts[lv] + idx, h]
                        out[b, q, h] += weights[b, q, h, lv, p] * sample
    return out.reshape(b_n, q_n, h_n * dh)


@pytest.mark.parametrize("padding", ["zeros", "border"])
def test_core_matches_loop_reference(padding):
    rng = np.random.default_rng(0)
    lengths = (7, 4, 2)
    b, q, h, p, dh = 2, 5, 3, 2, 4
    value = rng.normal(size=(b, sum(lengths), h, dh)).astype(np.float32)
    # Locations partly outside [0, 1] to exercise both padding modes.
    locs = rng.uniform(-0.3, 1.3, size=(b, q, h, len(lengths), p)).astype(np.float32)
    weights = rng.uniform(size=(b, q, h, len(lengths), p)).astype(np.float32)
    got = jax.jit(da.ms_deform_attn_core, static_argnums=(1, 4))(
        value, lengths, locs, weights, padding
    )
    want = _loop_reference(value, lengths, locs, weights, padding)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


def test_exact_grid_point_reads_that_step():
    # loc = (i + 0.5) / T reads exactly step i (grid_sample align_corners=False).
    value = np.arange(5, dtype=np.float32).reshape(1, 5, 1, 1)
    locs = ((np.arange(5) + 0.5) / 5).reshape(1, 5, 1, 1, 1).astype(np.float32)
    out = da.ms_deform_attn_core(value, (5,), locs, np.ones_like(locs))
    np.testing.assert_allclose(np.asarray(out)[0, :, 0], np.arange(5), atol=1e-6)
    # Half a step before the start: zero padding gives half of step 0, border gives step 0.
    loc = np.zeros((1, 1, 1, 1, 1), np.float32)
    v = np.full((1, 5, 1, 1), 2.0, np.float32)
    assert float(da.ms_deform_attn_core(v, (5,), loc, np.ones_like(loc))[0, 0, 0]) == 1.0
    assert float(da.ms_deform_attn_core(v, (5,), loc, np.ones_like(loc), "border")[0, 0, 0]) == 2.0


def test_offset_init_directions():
    bias = da.offset_bias_init(8, 2, 4)(None, (8 * 2 * 4,))
    grid = np.asarray(bias).reshape(8, 2, 4)
    np.testing.assert_allclose(grid[:, 1, 0], [1, 1, 0, -1, -1, -1, 0, 1], atol=1e-6)
    np.testing.assert_allclose(grid[1, 0], [1, 2, 3, 4], atol=1e-6)
    centred = np.asarray(da.offset_bias_init(8, 2, 4, centred=True)(None, (64,))).reshape(8, 2, 4)
    np.testing.assert_allclose(centred[0, 0], [-1.5, -0.5, 0.5, 1.5], atol=1e-6)


def test_module_box_reference_locations():
    """With zero offsets weights the module samples at c + bias/P * l/2 (PDVC's (c, l) refs)."""
    mod = da.MSDeformAttn1D(d_model=4, num_levels=1, num_heads=1, num_points=2)
    mem = jnp.asarray(np.random.default_rng(1).normal(size=(1, 8, 4)), jnp.float32)
    query = jnp.zeros((1, 1, 4))
    ref = jnp.asarray([[[[0.5, 0.4]]]])
    params = mod.init(jax.random.PRNGKey(0), query, ref, mem, (8,))
    out = mod.apply(params, query, ref, mem, (8,))
    # head 0 direction 1: offsets (1, 2) -> locations 0.5 + (1, 2)/2*0.2 = 0.6, 0.7; weights 1/2.
    p = params["params"]
    value = mem @ p["value_proj"]["kernel"] + p["value_proj"]["bias"]
    locs = np.asarray([0.6, 0.7]).reshape(1, 1, 1, 1, 2)
    ref_out = _loop_reference(np.asarray(value).reshape(1, 8, 1, 4), (8,), locs,
                              np.full((1, 1, 1, 1, 2), 0.5), "zeros")
    want = ref_out @ np.asarray(p["output_proj"]["kernel"]) + np.asarray(p["output_proj"]["bias"])
    np.testing.assert_allclose(np.asarray(out), want, rtol=1e-5, atol=1e-5)
