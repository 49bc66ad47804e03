"""A fake `gs://` object store for tests: fsspec + Orbax/TensorStore on a local folder.

`install_fake_gcs(root)` makes every `gs://bucket/key` path of the project (through
`data_prep.infra.paths` / etils.epath's fsspec backend) and of Orbax's TensorStore array
writer resolve to `root/bucket/key`. Code that bypasses the path layer (builtin `open`,
`os.path.*`, `os.makedirs` on a `gs://` string) does not see it: it either fails to find
its inputs or creates a local `gs:` folder in the working directory, which the tests check for.
"""
from __future__ import annotations

import os

import fsspec
from fsspec.implementations.dirfs import DirFileSystem
from fsspec.implementations.local import LocalFileSystem

_ROOT: list[str] = []


class FakeGcsFileSystem(DirFileSystem):
    """fsspec filesystem for the `gs`/`gcs` protocols, rooted in a local folder."""

    protocol = ("gs", "gcs")

    def __init__(self, *args, **kwargs):
        del args, kwargs  # gcsfs options (finalize_on_close, ...) do not apply
        # auto_mkdir: like an object store, writing a key needs no parent "folder".
        super().__init__(path=_ROOT[-1], fs=LocalFileSystem(auto_mkdir=True))

    @classmethod
    def _strip_protocol(cls, path):
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        for prefix in ("gs://", "gcs://"):
            if path.startswith(prefix):
                path = path[len(prefix):]
        return path.rstrip("/")

    def unstrip_protocol(self, name: str) -> str:
        return "gs://" + name


def _patch_tensorstore_specs() -> None:
    """Orbax builds TensorStore kvstore specs from the checkpoint path; for `gs://` it picks
    the real GCS driver. Map those to the `file` driver under the fake bucket root."""
    from orbax.checkpoint._src.serialization import tensorstore_utils as ts_utils

    if getattr(ts_utils, "_fake_gcs_patched", False):
        return
    original = ts_utils.build_kvstore_tspec

    def build(directory, *args, **kwargs):
        directory = os.fspath(directory)
        if directory.startswith("gs://"):
            directory = os.path.join(_ROOT[-1], directory[len("gs://"):])
        return original(directory, *args, **kwargs)

    ts_utils.build_kvstore_tspec = build
    ts_utils._fake_gcs_patched = True
    # Orbax asks the real GCS API (google-cloud-storage) whether a bucket has a hierarchical
    # namespace; the fake bucket is a flat one.
    from orbax.checkpoint._src.path import gcs_utils

    gcs_utils.is_hierarchical_namespace_enabled = lambda path: False


def install_from_environment() -> None:
    """The `DVC_FILESYSTEM_PLUGINS` hook: worker processes (spawned by the data stages) route
    `gs://` to the same folder as the process that called `install_fake_gcs`."""
    install_fake_gcs(os.environ["DVC_FAKE_GCS_ROOT"])


def install_fake_gcs(root: str) -> None:
    """Routes `gs://` to `root` for this process and the processes it starts (call before the
    first gs:// access)."""
    os.makedirs(root, exist_ok=True)
    _ROOT.append(os.fspath(root))
    os.environ["DVC_FAKE_GCS_ROOT"] = os.fspath(root)
    os.environ["DVC_FILESYSTEM_PLUGINS"] = "fake_bucket:install_from_environment"
    fsspec.register_implementation("gs", FakeGcsFileSystem, clobber=True)
    fsspec.register_implementation("gcs", FakeGcsFileSystem, clobber=True)
    FakeGcsFileSystem.clear_instance_cache()
    from etils.epath import backend

    backend.fsspec_backend._get_filesystem.cache_clear()
    _patch_tensorstore_specs()
