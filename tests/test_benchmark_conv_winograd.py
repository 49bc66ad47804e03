"""benchmarks/conv_winograd.py: the Winograd F(2x2, 3x3) convolution it times against the
project's equals that convolution (values and training gradients), at even, odd and 1x1
sizes, so its figures compare the same computation."""
import json

import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import conv_winograd


@pytest.mark.parametrize("x_shape,out_channels", [
    ((2, 6, 8, 3), 5), ((1, 7, 5, 4), 3), ((3, 1, 1, 2), 4), ((1, 2, 3, 1), 1)])
def test_winograd_equals_the_direct_convolution(x_shape, out_channels):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=x_shape), jnp.float32)
    k = jnp.asarray(rng.normal(size=(3, 3, x_shape[-1], out_channels)), jnp.float32)
    fns = conv_winograd.programs()  # jitted: one compile each, not one per primitive
    ref, got = fns["direct_fwd"](x, k), fns["winograd_fwd"](x, k)
    assert got.shape == ref.shape == x_shape[:-1] + (out_channels,)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    for g_w, g_d in zip(fns["winograd_grad"](x, k), fns["direct_grad"](x, k)):
        np.testing.assert_allclose(g_w, g_d, rtol=1e-4, atol=1e-4)


def test_shapes_are_the_stages_first_spatial_convolutions():
    got = conv_winograd.shapes(2, 16, 112)
    assert [(s, o) for _, s, o in got] == [
        ((32, 56, 56, 64), 144), ((16, 28, 28, 128), 288), ((8, 14, 14, 256), 576),
        ((4, 7, 7, 512), 1152)]


def test_command_line_checks_then_times_every_shape(tmp_path, capsys):
    out = tmp_path / "w.jsonl"
    conv_winograd.main(["--clip", "1x2x8", "--repeats", "1", "--json-out", str(out)])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["shape"] for r in records] == [n for n, _, _ in conv_winograd.shapes(1, 2, 8)]
    for r in records:
        assert r["max_rel_diff"] < 1e-5
        assert r["forward_speedup"] == pytest.approx(
            r["direct_fwd_ms"] / r["winograd_fwd_ms"], rel=0.01, abs=1e-3)
        assert r["machine"]["xla_matmul_gflops"] > 0
    assert "gradient direct" in capsys.readouterr().out
