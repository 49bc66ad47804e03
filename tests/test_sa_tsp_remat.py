"""`R2Plus1D.remat`: the rematerialised training step has the same parameters, gradients and
BatchNorm statistics as the plain one, and really recomputes what its policy says.

Small variant, 4 clips of 4x32x32 (train mode: batch statistics). The comparison needs a
well-conditioned step: a 1e-7 relative change of these clips moves the gradients by 6e-6 of
each leaf's largest entry, and remat by the same; at 2 clips of 4x16x16 (BatchNorm over 2
values in the last stage) both move them by 2-3e-3, and R(2+1)D-34 at random init by 40%."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sa_tsp_jax.models.r2plus1d import REMAT_POLICIES, make_backbone

CLIPS = np.random.default_rng(0).standard_normal((4, 4, 32, 32, 3)).astype(np.float32)


def _loss_fn(remat):
    model = make_backbone("small", remat=remat)

    def loss(params, batch_stats, clips):
        y, new = model.apply({"params": params, "batch_stats": batch_stats}, clips, train=True,
                             mutable=["batch_stats"])
        return jnp.sum(y**2), new["batch_stats"]

    return model, jax.value_and_grad(loss, has_aux=True)


def _init(remat):
    model = make_backbone("small", remat=remat)
    return jax.jit(lambda key: model.init(key, CLIPS[:1], train=False))(jax.random.key(0))


@pytest.fixture(scope="module")
def variables():
    return _init("none")


@pytest.fixture(scope="module")
def results(variables):
    out = {}
    for remat in REMAT_POLICIES:
        _, step = _loss_fn(remat)
        args = (variables["params"], variables["batch_stats"], jnp.asarray(CLIPS))
        lowered = jax.jit(step).lower(*args)
        out[remat] = (lowered.compile()(*args), lowered.cost_analysis()["flops"])
    return out


def test_same_parameters_for_every_policy(variables):
    # Names and shapes (what checkpoints and the PyTorch import see) for every policy; the
    # seeded values too for "block" (a run may switch policy and start from the same init).
    for remat in REMAT_POLICIES:
        model = make_backbone("small", remat=remat)
        shapes = jax.eval_shape(lambda k, m=model: m.init(k, CLIPS[:1], train=False),
                                jax.random.key(0))
        assert jax.tree.structure(shapes) == jax.tree.structure(variables), remat
        assert [a.shape for a in jax.tree.leaves(shapes)] == [
            a.shape for a in jax.tree.leaves(variables)], remat
    jax.tree.map(np.testing.assert_array_equal, _init("block"), variables)


@pytest.mark.parametrize("remat", [r for r in REMAT_POLICIES if r != "none"])
def test_same_loss_gradients_and_statistics(results, remat):
    ((loss, stats), grads), _ = results["none"]
    ((loss_r, stats_r), grads_r), _ = results[remat]
    np.testing.assert_allclose(loss_r, loss, rtol=1e-5)
    for name, tree, tree_r in (("grad", grads, grads_r), ("batch_stats", stats, stats_r)):
        for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(tree)[0],
                                jax.tree.leaves(tree_r), strict=True):
            scale = float(np.max(np.abs(a)))
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=2e-5 * scale,
                                       err_msg=f"{name} {jax.tree_util.keystr(path)}")


def test_each_policy_recomputes_what_it_says(results):
    # FLOPs of the lowered step (XLA's cost analysis, before optimisation): "block" runs the
    # blocks' convolutions twice, "conv_outputs" only their elementwise BatchNorm and ReLU.
    flops = {remat: f for remat, (_, f) in results.items()}
    assert flops["block"] > 1.15 * flops["none"], flops
    assert flops["none"] < flops["conv_outputs"] < 1.05 * flops["none"], flops


def test_an_unknown_policy_is_a_clear_error():
    with pytest.raises(ValueError, match="remat must be one of"):
        make_backbone("small", remat="everything").init(jax.random.key(0), CLIPS[:1])


def test_the_trainer_builds_the_configured_policy():
    from configs.sa_tsp import activitynet
    from sa_tsp_jax import train

    assert train.build_model(activitynet.get_config("runlocal")).backbone.remat == "none"
    config = activitynet.get_config("remat=block,runlocal")
    assert train.build_model(config).backbone.remat == "block"
