"""The one path layer: every file the project reads or writes goes through here.

Built on `etils.epath` (installed with Orbax), so a path may be local (`/data/x`,
`relative/x`) or on an object store (`gs://bucket/x`, `s3://...`; any fsspec or gfile-backed
scheme epath knows). Rules the rest of the code follows:

- never `os.path.abspath` / `os.makedirs` / builtin `open` on a user path: use `as_path`,
  `make_dirs`, `open_file`, `read_text`, `write_*` from here;
- writes that other stages read are atomic (`data_prep.infra.atomic_files`);
- libraries that need a real local file (h5py, PyAV, Java jars) get one through
  `local_copy` (read) or `local_output` (write), which stage through a local temporary file
  when the path is remote and are free when it is local.
"""
from __future__ import annotations

import contextlib
import glob as glob_lib
import importlib
import os
import shutil
import tempfile
from collections.abc import Iterator

from etils import epath

# The fsspec package each object-store scheme needs (epath's fsspec backend).
_SCHEME_PACKAGES = {"gs": "gcsfs", "s3": "s3fs", "az": "adlfs", "hf": "huggingface_hub"}

PathLike = str | os.PathLike | epath.Path


def scheme(path: PathLike) -> str:
    """'gs' for 'gs://b/x', '' for a local path."""
    text = os.fspath(path) if not isinstance(path, str) else path
    head, sep, _ = text.partition("://")
    return head if sep else ""


def is_local(path: PathLike) -> bool:
    return scheme(path) in ("", "file")


_plugins_loaded = False


def load_filesystem_plugins() -> None:
    """Calls the `module:function` entries of `$DVC_FILESYSTEM_PLUGINS` (comma-separated) once
    per process: how extra fsspec filesystems (a company's object store, the tests' fake
    bucket) reach every process, worker processes included (they inherit the environment)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for item in filter(None, os.environ.get("DVC_FILESYSTEM_PLUGINS", "").split(",")):
        module, _, function = item.strip().partition(":")
        getattr(importlib.import_module(module), function)()


def check_filesystem(path: PathLike) -> None:
    """Raises ImportError naming the package a remote `path` needs when it is missing.

    epath reads `gs://` through fsspec + gcsfs (or TensorFlow's gfile when TF is installed);
    without either the first access would fail deep inside a stage with an obscure error.
    """
    name = scheme(path)
    if name in ("", "file"):
        return
    load_filesystem_plugins()
    package = _SCHEME_PACKAGES.get(name)
    if package is None:
        return
    try:
        import fsspec

        fsspec.get_filesystem_class(name)
        return
    except (ImportError, ValueError) as err:
        reason = str(err)
    try:  # epath prefers TensorFlow's gfile when TensorFlow is installed
        import tensorflow  # noqa: F401

        return
    except ImportError:
        pass
    raise ImportError(
        f"{os.fspath(path)!r}: reading/writing {name}:// paths needs the '{package}' package "
        f"(pip install {package}); {reason}")


def as_path(path: PathLike) -> epath.Path:
    """A user path (str, os.PathLike or epath.Path) -> epath.Path; remote schemes checked."""
    check_filesystem(path)
    return epath.Path(path)


def join(base: PathLike, *parts: str) -> str:
    """String join that keeps `gs://` intact (`os.path.join` would too, but this is explicit
    and also accepts epath.Path)."""
    return os.fspath(epath.Path(base).joinpath(*parts))


def resolve(base: PathLike, path: PathLike) -> str:
    """`path` when it is absolute or a URI (`gs://...`), else `path` under `base` (how config
    files name inputs relative to a data root or workdir)."""
    text = os.fspath(path)
    if scheme(text) or os.path.isabs(text):
        return text
    return join(base, text)


def absolute(path: PathLike) -> str:
    """Absolute local path, or the URI unchanged (what `os.path.abspath` breaks for gs://)."""
    if is_local(path):
        return os.path.abspath(os.fspath(path))
    return os.fspath(path)


def make_dirs(path: PathLike) -> epath.Path:
    """Creates `path` and its parents (a no-op on object stores that have no folders)."""
    p = as_path(path)
    p.mkdir(parents=True, exist_ok=True)
    return p


def exists(path: PathLike) -> bool:
    return as_path(path).exists()


def is_file(path: PathLike) -> bool:
    p = as_path(path)
    return p.exists() and not p.is_dir()


def is_dir(path: PathLike) -> bool:
    return as_path(path).is_dir()


def list_dir(path: PathLike) -> list[str]:
    """Names (not paths) of the entries of a folder, sorted."""
    return sorted(p.name for p in as_path(path).iterdir())


def glob(pattern: str) -> list[str]:
    """Sorted matches of a glob pattern, local or remote (`gs://b/shards/*.tfrecord`)."""
    if is_local(pattern):
        return sorted(glob_lib.glob(pattern))
    check_filesystem(pattern)
    # epath globs relative to a directory: split at the first component with a wildcard.
    text = os.fspath(pattern)
    head, _, _ = text.partition("://")
    rest = text[len(head) + 3:]
    parts = rest.split("/")
    fixed = []
    for part in parts:
        if any(c in part for c in "*?["):
            break
        fixed.append(part)
    base = epath.Path(f"{head}://" + "/".join(fixed))
    tail = "/".join(parts[len(fixed):])
    if not tail:
        return [os.fspath(base)] if base.exists() else []
    return sorted(os.fspath(p) for p in base.glob(tail))


def open_file(path: PathLike, mode: str = "r", encoding: str | None = "utf-8"):
    """`open` for local and remote paths (text modes default to UTF-8)."""
    p = as_path(path)
    if "b" in mode:
        return p.open(mode)
    return p.open(mode, encoding=encoding)


def read_text(path: PathLike) -> str:
    return as_path(path).read_text(encoding="utf-8")


def read_bytes(path: PathLike) -> bytes:
    return as_path(path).read_bytes()


def remove(path: PathLike, missing_ok: bool = True) -> None:
    p = as_path(path)
    if p.exists():
        p.unlink()
    elif not missing_ok:
        raise FileNotFoundError(os.fspath(path))


def remove_tree(path: PathLike) -> None:
    p = as_path(path)
    if p.exists():
        p.rmtree()


def stat_signature(path: PathLike) -> dict:
    """{'size': bytes, 'mtime': seconds} of a file (what fingerprints of inputs use)."""
    st = as_path(path).stat()
    return {"size": int(st.length), "mtime": float(st.mtime)}


@contextlib.contextmanager
def local_copy(path: PathLike) -> Iterator[str]:
    """A local file name with the contents of `path`, for libraries that need one (h5py,
    PyAV, numpy memory maps). Local paths are yielded as they are; remote ones are downloaded
    to a temporary file that is removed afterwards."""
    if is_local(path):
        yield os.fspath(path)
        return
    src = as_path(path)
    suffix = src.suffix
    fd, tmp = tempfile.mkstemp(prefix="dvc-stage-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as out, src.open("rb") as inp:
            shutil.copyfileobj(inp, out, length=8 << 20)
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def local_output(path: PathLike) -> Iterator[str]:
    """A local file name to write (e.g. with h5py); on success its bytes land at `path`.

    Locally this is a temporary file beside `path` renamed into place (atomic); remotely a
    local temporary file uploaded as one object (object writes are atomic per object). On
    error nothing is written at `path`.
    """
    target = as_path(path)
    if is_local(path):
        target.parent.mkdir(parents=True, exist_ok=True)
        # The temporary name keeps the suffix: writers that infer the format from it
        # (matplotlib's savefig) behave as with the final name.
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.tmp-", suffix=target.suffix,
                                   dir=os.fspath(target.parent))
    else:
        fd, tmp = tempfile.mkstemp(prefix="dvc-out-", suffix=target.suffix)
    os.close(fd)
    try:
        yield tmp
        if is_local(path):
            os.chmod(tmp, 0o644)
            os.replace(tmp, os.fspath(target))
        else:
            with open(tmp, "rb") as inp, target.open("wb") as out:
                shutil.copyfileobj(inp, out, length=8 << 20)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
