"""Shared training infrastructure: mesh, shardings, checkpoints with iterator state, metrics."""
import json
import math

import grain
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_prep.infra import checkpointing, mesh, metrics, progress


def test_make_mesh_fills_remaining_devices():
    m = mesh.make_mesh((("data", -1), ("fsdp", 2)))
    assert m.shape == {"data": jax.device_count() // 2, "fsdp": 2}
    assert mesh.data_axes(m) == ("data", "fsdp")
    with pytest.raises(ValueError, match="needs 16 devices"):
        mesh.make_mesh((("data", 16),))
    with pytest.raises(ValueError, match="at most one axis"):
        mesh.make_mesh((("data", -1), ("fsdp", -1)))


def test_fsdp_rule_shards_largest_divisible_dim_and_keeps_small_leaves_replicated():
    m = mesh.make_mesh((("data", 2), ("fsdp", 4)))
    params = {
        "big": jax.ShapeDtypeStruct((6, 64, 512), jnp.float32),
        "odd": jax.ShapeDtypeStruct((3, 5, 7, 4099), jnp.float32),
        "small": jax.ShapeDtypeStruct((4,), jnp.float32),
    }
    shard = mesh.param_shardings(params, m, rule="fsdp")
    assert tuple(shard["big"].spec) == (None, None, "fsdp")
    assert tuple(shard["odd"].spec) == ()  # nothing divisible by 4
    assert tuple(shard["small"].spec) == ()
    with pytest.raises(ValueError, match="unknown sharding rule"):
        mesh.param_shardings(params, m, rule="tp")


def test_global_batch_is_split_over_devices_and_drops_strings():
    m = mesh.make_mesh()
    batch = {"x": np.arange(16 * 3, dtype=np.float32).reshape(16, 3), "id": np.array(["a"] * 16)}
    out = mesh.global_batch(batch, mesh.batch_sharding(m))
    assert set(out) == {"x"}
    assert out["x"].shape == (16, 3)
    assert len(out["x"].addressable_shards) == jax.device_count()
    np.testing.assert_array_equal(np.asarray(out["x"]), batch["x"])


def test_checkpointer_restores_state_and_grain_iterator(tmp_path):
    ds = grain.MapDataset.range(100).shuffle(seed=3).batch(4)
    it = iter(ds.to_iter_dataset())
    for _ in range(3):
        next(it)
    state = {"w": jnp.arange(6.0).reshape(2, 3), "step": jnp.asarray(3, jnp.int32)}
    ckpt = checkpointing.Checkpointer(str(tmp_path / "ckpt"), save_every_steps=1)
    assert ckpt.latest_step() is None
    assert ckpt.save(3, state, it)
    ckpt.wait()
    expected_next = next(it)

    fresh = iter(ds.to_iter_dataset())
    ckpt2 = checkpointing.Checkpointer(str(tmp_path / "ckpt"))
    assert ckpt2.latest_step() == 3
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
    restored = ckpt2.restore(3, abstract, fresh)
    np.testing.assert_array_equal(restored["w"], state["w"])
    np.testing.assert_array_equal(next(fresh), expected_next)
    ckpt.close()
    ckpt2.close()


def test_metric_writer_appends_json_lines(tmp_path):
    with metrics.MetricWriter(str(tmp_path), tensorboard=False) as w:
        w.write(1, {"loss": np.float32(2.5)})
        w.write(2, {"loss": float("nan"), "acc": 0.5}, split="eval")
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "spl')  # a run killed mid-line
    records = metrics.read_metrics(str(tmp_path / "metrics.jsonl"))
    assert [r["step"] for r in records] == [1, 2]
    assert records[0]["loss"] == 2.5 and records[0]["split"] == "train"
    assert math.isnan(records[1]["loss"]) and records[1]["split"] == "eval"
    json.loads(open(tmp_path / "metrics.jsonl").readline())


def test_check_finite_names_the_step():
    assert progress.check_finite(np.float32(1.5), 7) == 1.5
    with pytest.raises(FloatingPointError, match="step 12"):
        progress.check_finite(float("nan"), 12)


def test_progress_reports_rates_and_eta(caplog):
    p = progress.Progress(total_steps=100, items_per_step=8, log_every_s=0.0, item_name="clips")
    caplog.set_level("INFO")
    p.update(0)
    p.update(10, force=True)
    rates = p.rates(10)
    assert rates["clips_per_s"] == pytest.approx(8 * rates["steps_per_s"])
    assert "ETA" in caplog.text and "clips/s" in caplog.text
    assert progress.format_duration(3725) == "1:02:05"


def test_restore_latest_places_arrays_with_the_given_shardings(tmp_path):
    ckpt = checkpointing.Checkpointer(str(tmp_path / "ckpt"))
    abstract = {"w": jax.ShapeDtypeStruct((8, 4), jnp.float32)}
    shardings = mesh.param_shardings(
        abstract, mesh.make_mesh((("data", -1), ("fsdp", 2))), rule="fsdp", min_size=1)
    assert ckpt.restore_latest(abstract, shardings) == (None, 0)
    ckpt.save(5, {"w": jnp.ones((8, 4))})
    ckpt.save(9, {"w": jnp.full((8, 4), 2.0)})
    ckpt.wait()
    state, step = ckpt.restore_latest(abstract, shardings)
    assert step == 9 and float(state["w"][0, 0]) == 2.0
    assert state["w"].sharding == shardings["w"]
    ckpt.close()


def test_progress_announces_compilation_and_shows_the_loss(caplog):
    caplog.set_level("INFO")
    p = progress.Progress(total_steps=10, items_per_step=2, log_every_s=0.0, desc="train")
    assert "first step compiles" in caplog.text
    p.update(1)
    assert "first step done after" in caplog.text
    p.show({"loss": 1.23456, "grad_norm": 3.0})
    p.update(2, force=True)
    last = caplog.records[-1].getMessage()
    assert "train step 2/10 | loss 1.2346 |" in last and "grad_norm" not in last


def test_saving_replicated_arrays_on_cpu_compiles_nothing(tmp_path):
    """Orbax's replica-parallel saving slices every replicated array per device with an eager
    `lax.slice` (an XLA compilation each: 7-18 s for the encoder's first save on 8 CPU
    devices). The Checkpointer turns it off on CPU: a first save of 12 arrays of new shapes,
    replicated over the 8 test devices, compiles nothing, and restores the same values."""
    from jax import monitoring
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    assert len(jax.devices()) == 8
    replicated = NamedSharding(mesh.make_mesh((("data", -1),)), P())
    rng = np.random.default_rng(3)
    state = {f"leaf{i}": jax.device_put(rng.normal(size=(37 + i, 5)).astype(np.float32),
                                        replicated) for i in range(12)}
    state = jax.block_until_ready(state)
    compiles = []

    def listener(event, duration, **_):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    monitoring.register_event_duration_secs_listener(listener)
    try:
        ckpt = checkpointing.Checkpointer(str(tmp_path / "ckpt"))
        ckpt.save(1, state)
        ckpt.wait()
    finally:
        monitoring.unregister_event_duration_listener(listener)
    assert compiles == []
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype,
                                                           sharding=replicated), state)
    restored, step = ckpt.restore_latest(abstract)
    assert step == 1
    jax.tree.map(np.testing.assert_array_equal, restored, state)
    ckpt.close()
