"""benchmarks/captioner_compile.py: its fusion breakdown counts a compiled program's fusions
by the op_name groups the README quotes (the caption loss's cond branches, ...)."""
import jax
import jax.numpy as jnp

from benchmarks.captioner_compile import fusion_groups


def test_fusion_groups_count_by_op_name():
    def f(x, flag):
        y = jax.lax.cond(flag, lambda v: jnp.sin(v) * 2 + 1, lambda v: jnp.cos(v) - 3, x)
        return jnp.tanh(y).sum()

    hlo = jax.jit(jax.grad(f)).lower(jnp.ones((64, 64)), True).compile().as_text()
    groups = fusion_groups(hlo)
    assert sum(groups.values()) == hlo.count(" fusion(") + hlo.count(" custom-call(")
    assert groups["jvp()/cond/branch_#_fun"] >= 1, groups
    assert any(name.startswith("transpose(jvp())") for name in groups), groups
    assert not any(ch.isdigit() for name in groups for ch in name), groups
