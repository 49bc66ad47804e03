"""The path layer, atomic files, metrics, switches and the loop kit, locally and on a (fake)
gs:// bucket: what every stage relies on to run with its files in cloud storage."""
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
from fake_bucket import install_fake_gcs

from configs.common import parse_arg, run_block
from data_prep.infra import atomic_files, distributed, loop, paths, videos
from data_prep.infra.checkpointing import Checkpointer
from data_prep.infra.metrics import MetricWriter, read_metrics
from data_prep.infra.preemption import PreemptionGuard


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    """gs://bkt/... lands under the returned local folder."""
    root = tmp_path_factory.mktemp("fake_gcs")
    install_fake_gcs(str(root))
    return root


@pytest.mark.parametrize("where", ["local", "gs"])
def test_files_and_globs_work_locally_and_in_a_bucket(where, bucket, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a stray builtin open("gs://...") would land here
    base = str(tmp_path / "run") if where == "local" else "gs://bkt/io_test"
    atomic_files.atomic_write_json(paths.join(base, "a", "x.json"), {"v": 1})
    atomic_files.atomic_write_text(paths.join(base, "a", "y.txt"), "hello")
    assert atomic_files.read_json(paths.join(base, "a", "x.json")) == {"v": 1}
    assert paths.read_text(paths.join(base, "a", "y.txt")) == "hello"
    assert paths.list_dir(paths.join(base, "a")) == ["x.json", "y.txt"]
    assert paths.glob(paths.join(base, "a", "*.json")) == [paths.join(base, "a", "x.json")]
    assert paths.is_dir(paths.join(base, "a")) and paths.is_file(paths.join(base, "a", "x.json"))
    with paths.local_output(paths.join(base, "b", "data.bin")) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"\x00\x01")
    with paths.local_copy(paths.join(base, "b", "data.bin")) as local:
        assert open(local, "rb").read() == b"\x00\x01"
    assert paths.stat_signature(paths.join(base, "b", "data.bin"))["size"] == 2
    paths.remove(paths.join(base, "b", "data.bin"))
    assert not paths.exists(paths.join(base, "b", "data.bin"))
    assert not os.path.exists(tmp_path / "gs:")
    if where == "gs":
        assert (bucket / "bkt" / "io_test" / "a" / "x.json").is_file()
        assert paths.absolute(base) == base  # os.path.abspath would give <cwd>/gs:/bkt/...
    # No temporary files are left beside the outputs.
    assert not [n for n in paths.list_dir(paths.join(base, "a")) if "tmp" in n]


def test_local_output_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.h5"
    with pytest.raises(RuntimeError):
        with paths.local_output(str(target)) as tmp:
            open(tmp, "w").write("partial")
            raise RuntimeError("writer crashed")
    assert os.listdir(tmp_path) == []


def test_missing_filesystem_package_is_named():
    with pytest.raises(ImportError, match="s3fs"):
        paths.as_path("s3://bucket/key")


def test_clean_stale_temporaries(tmp_path):
    (tmp_path / ".x.json.abc.tmp").write_text("half")
    (tmp_path / "shard.tfrecord.tmp-123").write_text("half")
    (tmp_path / "keep.json").write_text("{}")
    removed = atomic_files.clean_stale_temporaries(str(tmp_path))
    assert len(removed) == 2 and os.listdir(tmp_path) == ["keep.json"]


def test_read_json_names_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        atomic_files.read_json(str(bad))
    with pytest.raises(FileNotFoundError, match="nope.json"):
        atomic_files.read_json(str(tmp_path / "nope.json"))


@pytest.mark.parametrize("where", ["local", "gs"])
def test_metrics_truncate_after_restored_step(where, bucket, tmp_path):
    workdir = str(tmp_path) if where == "local" else "gs://bkt/metrics_test"
    with MetricWriter(workdir) as w:
        for step in (1, 2, 3, 4):
            w.write(step, {"loss": float(step)})
    with MetricWriter(workdir) as w:  # a resumed run restored step 2
        w.truncate_after(2)
        w.write(3, {"loss": 30.0})
    records = read_metrics(paths.join(workdir, "metrics.jsonl"))
    assert [(r["step"], r["loss"]) for r in records] == [(1, 1.0), (2, 2.0), (3, 30.0)]


def test_checkpoints_in_a_bucket_round_trip(bucket):
    with Checkpointer("gs://bkt/ckpt_test/checkpoints") as ckpt:
        ckpt.save(5, {"w": jnp.arange(3.0)}, force=True)
        ckpt.wait()
        state, step = ckpt.restore_latest({"w": jnp.zeros(3)})
        host = ckpt.restore_to_host(5)
    assert step == 5 and np.array_equal(np.asarray(state["w"]), [0.0, 1.0, 2.0])
    assert isinstance(host["w"], np.ndarray) and host["w"].tolist() == [0.0, 1.0, 2.0]
    assert (bucket / "bkt" / "ckpt_test" / "checkpoints" / "5").is_dir()


def test_parse_arg_is_strict_and_typed():
    sw = parse_arg("epochs=5,runlocal,lr=0.5,name=x", epochs=30, runlocal=False, lr=1e-3,
                   name="", seed=0)
    assert (sw.epochs, sw.runlocal, sw.lr, sw.name, sw.seed) == (5, True, 0.5, "x", 0)
    with pytest.raises(ValueError, match="unknown config switch 'epoch'.*epochs"):
        parse_arg("epoch=5", epochs=30)
    with pytest.raises(ValueError, match="expected int"):
        parse_arg("epochs=five", epochs=30)
    with pytest.raises(ValueError, match="needs a value"):
        parse_arg("epochs", epochs=30)
    assert set(run_block()) == {"distributed", "coordinator_address", "num_processes",
                                "process_id", "local_device_ids"}


def test_itstime_and_metric_window():
    assert [s for s in range(1, 11) if loop.itstime(s, 4, 10)] == [4, 8, 10]
    assert not loop.itstime(3, 0, 10) and loop.itstime(10, 0, 10)
    window = loop.MetricWindow()
    for value in (1.0, 2.0, 6.0):
        window.add({"loss": jnp.float32(value)})
    assert window.flush(3) == {"loss": 3.0} and len(window) == 0
    window.add({"loss": jnp.float32(np.nan)})
    with pytest.raises(FloatingPointError, match="step 4"):
        window.flush(4)


def test_mesh_for_batch_checks_divisibility():
    mesh, per_host = loop.mesh_for_batch((("data", -1),), 8, num_devices=4)
    assert mesh.shape == {"data": 4} and per_host == 8
    with pytest.raises(ValueError, match="not divisible"):
        loop.mesh_for_batch((("data", -1),), 6, num_devices=4)


def test_single_process_distributed_helpers_are_identity():
    assert distributed.is_main_process()
    assert distributed.allgather_objects({"a": 1}) == [{"a": 1}]
    distributed.check_same_across_processes({"x": 1}, "config")
    assert distributed.fingerprint({"b": 1, "a": 2}) == distributed.fingerprint({"a": 2, "b": 1})


def test_preemption_guard_turns_sigterm_into_a_stop_request():
    import signal

    with PreemptionGuard() as guard:
        assert not guard.should_stop(1)
        os.kill(os.getpid(), signal.SIGTERM)
        assert guard.should_stop(2)
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None) or callable(
        signal.getsignal(signal.SIGTERM))


@pytest.mark.parametrize("video_id,files,expected", [
    ("v_abc", ["abc.mp4"], "abc.mp4"),
    ("v_abc", ["v_abc.webm", "abc.mp4"], "v_abc.webm"),
    ("v_v_28qqbBvu6", ["v_28qqbBvu6.mp4"], "v_28qqbBvu6.mp4"),
    ("v_v_28qqbBvu6", ["v_v_28qqbBvu6.mkv"], "v_v_28qqbBvu6.mkv"),
    ("clip-1_a", ["clip-1_a.m4v"], "clip-1_a.m4v"),
    ("v_x-y_z", ["x-y_z.mov"], "x-y_z.mov"),
    ("v_missing", ["other.mp4"], None),
])
def test_one_video_id_rule(tmp_path, video_id, files, expected):
    for name in files:
        (tmp_path / name).write_bytes(b"")
    found = videos.find_video_file(str(tmp_path), video_id)
    assert (found and os.path.basename(found)) == expected


def test_metric_lines_are_json(tmp_path):
    with MetricWriter(str(tmp_path)) as w:
        w.write(1, {"loss": np.float32(1.5)})
    line = (tmp_path / "metrics.jsonl").read_text().splitlines()[0]
    assert json.loads(line)["loss"] == 1.5
