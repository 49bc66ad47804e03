"""TensorBoard logging out of the box (issue 14 point 6): the metric writer's scalars land in
an event file that reads back (TFRecord framing + tensorboardX's Event proto) with the same
values, locally and on a `gs://` workdir; a resumed run marks TensorBoard's purge step."""
from __future__ import annotations

import math

import pytest

from data_prep.infra import paths
from data_prep.infra.metrics import MetricWriter
from data_prep.shards.tfrecord import scan_tfrecord

pytest.importorskip("tensorboardX", reason="tensorboardX (requirements.txt) not installed")
from tensorboardX.proto import event_pb2  # noqa: E402


def _events(folder: str) -> tuple[list[str], dict, list[int]]:
    """(event file names, {tag: [(step, value)]}, purge steps) of the files in `folder`."""
    names = sorted(n for n in paths.list_dir(folder) if "tfevents" in n)
    scalars: dict[str, list] = {}
    purges = []
    for name in names:
        for _, record in scan_tfrecord(paths.join(folder, name)):  # checks every CRC
            event = event_pb2.Event.FromString(record)
            if event.HasField("session_log"):
                purges.append(event.step)
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return names, scalars, purges


def test_scalars_land_in_an_event_file(tmp_path):
    with MetricWriter(str(tmp_path)) as w:
        w.write(1, {"loss": 2.5, "lr": 1e-4})
        w.write(2, {"loss": 1.25, "lr": 2e-4})
        w.write(2, {"METEOR": 3.75, "bad": float("inf")}, split="val")
        # Flushed at every write: readable while the run goes on.
        assert _events(str(tmp_path / "tensorboard" / "train"))[1]["loss"] == [(1, 2.5),
                                                                                 (2, 1.25)]
    _, train, _ = _events(str(tmp_path / "tensorboard" / "train"))
    assert train["loss"] == [(1, 2.5), (2, 1.25)]
    assert train["lr"] == [(1, pytest.approx(1e-4, rel=1e-6)), (2, pytest.approx(2e-4, rel=1e-6))]
    _, val, _ = _events(str(tmp_path / "tensorboard" / "val"))
    assert val["METEOR"] == [(2, 3.75)] and math.isnan(val["bad"][0][1])  # like the JSON lines

    # A resumed run (restored step 1): its new event file carries the purge step 2.
    with MetricWriter(str(tmp_path)) as w:
        w.truncate_after(1)
        w.write(2, {"loss": 0.5, "lr": 3e-4})
    names, train, purges = _events(str(tmp_path / "tensorboard" / "train"))
    assert len(names) == 2 and purges == [2]
    assert train["loss"][-1] == (2, 0.5)


def test_remote_workdir_gets_event_files(tmp_path, monkeypatch):
    from fake_bucket import install_fake_gcs

    monkeypatch.chdir(tmp_path)  # a stray builtin open("gs://...") would land here
    install_fake_gcs(str(tmp_path / "bucket"))
    workdir = "gs://b/run"
    with MetricWriter(workdir) as w:
        w.write(3, {"loss": 4.0})
        # Uploaded at every write, not only at close.
        assert _events(paths.join(workdir, "tensorboard", "train"))[1]["loss"] == [(3, 4.0)]
        w.write(4, {"loss": 5.0})
    names, train, _ = _events(paths.join(workdir, "tensorboard", "train"))
    assert len(names) == 1 and train["loss"] == [(3, 4.0), (4, 5.0)]
    assert (tmp_path / "bucket" / "b" / "run" / "tensorboard" / "train" / names[0]).is_file()
    assert not (tmp_path / "gs:").exists()
