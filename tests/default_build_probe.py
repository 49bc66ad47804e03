"""Numbers the tests check under XLA's default build (see test_default_build.py).

The test session compiles XLA's kernels with LLVM's optimisation off (conftest.py) to save
compile time; this script computes a few values and gradients through the project's custom
paths (the factorised R(2+1)D convolutions and their kernel-gradient VJP, the PDVC forward,
the teacher-forced caption loop with `loop_gradients`' backward) so that one test can compare
them between the default build and the tests' build.

    python tests/default_build_probe.py OUT.npz     # writes {name: array}
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _filled(shapes, rng):
    """Seeded values for a tree of `jax.ShapeDtypeStruct`s (no init program to compile):
    weights ~ N(0, 1/fan_in), BatchNorm scales ~1, running variances in [0.5, 1.5]."""
    import jax
    import numpy as np

    def leaf(path, s):
        name = jax.tree_util.keystr(path)
        if name.endswith("['var']"):
            return np.asarray(rng.uniform(0.5, 1.5, s.shape), s.dtype)
        if name.endswith("['scale']"):
            return np.asarray(1 + 0.1 * rng.normal(size=s.shape), s.dtype)
        fan_in = int(np.prod(s.shape[:-1])) if len(s.shape) > 1 else 100
        return np.asarray(rng.normal(size=s.shape) / np.sqrt(fan_in), s.dtype)

    return jax.tree_util.tree_map_with_path(leaf, shapes)


def probe() -> dict:
    """{name: np.ndarray}: losses and their gradients' leaves, deterministic (seeded)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from captioner_jax import decoding, losses
    from captioner_jax.models.pdvc import PDVC
    from sa_tsp_jax.models.r2plus1d import make_backbone

    rng = np.random.default_rng(0)
    out = {}

    # R(2+1)D "small": every conv kind and the kernel-gradient VJP. BatchNorm with its
    # running statistics: batch statistics over this few samples would amplify rounding
    # (1e-3 apart in the first block's gradients), which is not what this compares.
    backbone = make_backbone("small")
    clips = jnp.asarray(rng.normal(size=(2, 4, 16, 16, 3)), jnp.float32)
    variables = _filled(jax.eval_shape(lambda: backbone.init(jax.random.PRNGKey(0), clips,
                                                            train=False)), rng)
    direction = jnp.asarray(rng.normal(size=(2, backbone.feature_dim)), jnp.float32)

    def encoder_loss(params):
        feats = backbone.apply({"params": params, "batch_stats": variables["batch_stats"]},
                               clips, train=False)
        return jnp.sum(feats * direction)

    value, grads = jax.jit(jax.value_and_grad(encoder_loss))(variables["params"])
    out["encoder_loss"] = np.asarray(value)
    for path, leaf in jax.tree_util.tree_leaves_with_path(grads):
        out["encoder_grad" + jax.tree_util.keystr(path)] = np.asarray(leaf)

    # Tiny PDVC: forward, then the caption loss the trainer reads and its gradient.
    b, t, c, v, n, length = 2, 16, 8, 23, 4, 9
    model = PDVC(vocab_size=v, hidden_dim=32, num_heads=4, ffn_dim=32, num_queries=n,
                 cap_heads=2, rnn_size=32, word_dim=16, att_hid=16, num_levels=2,
                 cap_levels=2, enc_layers=1, dec_layers=1)
    feats = jnp.asarray(rng.normal(size=(b, t, c)), jnp.float32)
    valid = jnp.asarray(np.arange(t)[None] < np.array([[t], [11]]))
    duration = jnp.asarray([30.0, 300.0])
    pdvc_vars = _filled(jax.eval_shape(lambda: model.init(
        {"params": jax.random.PRNGKey(0)}, feats, valid, duration, method=PDVC.init_all)), rng)
    tokens = np.zeros((b, n, length), np.int32)
    mask = np.zeros((b, n, length), bool)
    for (i, j), words in np.ndenumerate(np.array([(3, 6, 0, 2), (5, 0, 4, 1)])):
        if words:
            tokens[i, j, 1:words + 1] = rng.integers(1, v, words)
            mask[i, j, :words + 2] = True
    tokens, target_mask = jnp.asarray(tokens), jnp.asarray(mask[..., 1:])

    # The forward outside the gradient: the caption head's gradient (the caption loop and
    # the word projection, `loop_gradients`) is the custom backward checked here.
    enc = jax.jit(lambda v: model.apply(v, feats, valid, duration))(pdvc_vars)

    def caption_loss(params):
        logp = decoding.caption_token_logprobs(
            model, {"params": params}, enc, enc["hs"][-1], enc["caption_refs"][-1], tokens,
            target_mask, chunk=8)
        return losses.caption_nll(logp, target_mask).sum()

    value, grads = jax.jit(jax.value_and_grad(caption_loss))(pdvc_vars["params"])
    out["caption_loss"] = np.asarray(value)
    for key in ("hs", "caption_refs", "memory"):
        out["pdvc_" + key] = np.asarray(enc[key])
    for path, leaf in jax.tree_util.tree_leaves_with_path(grads["caption_cell"]):
        out["caption_grad" + jax.tree_util.keystr(path)] = np.asarray(leaf)
    return out


if __name__ == "__main__":
    import numpy as np

    np.savez(sys.argv[1], **probe())
