"""Per-video feature loading, temporal resizing and combination of several sources (PDVC).

Formats (all give float32 [N, D] per video):
  * "npy": one `.npy` per video (PDVC; our `sa_tsp_extract`; BMT's VGGish), file name from
    `pattern` with `{video_id}` (e.g. `v_QOlSCBRmfWY`) and `{youtube_id}` (without `v_`);
  * "hdf5": one HDF5 file keyed by video id (TSP's `merge_pkl_files_into_one_h5_feature_file`);
    keys are tried as `video_id` and `youtube_id`;
  * "bmt_i3d": BMT's two-stream I3D, `{pattern}` with `{stream}` in (rgb, flow), concatenated
    on channels -> [N, 2048].
Each source is resized separately to `num_steps` with PDVC's nearest interpolation
(`resizeFeature`: scipy interp1d(kind="nearest") at x = i * (N - 1) / (num_steps - 1)), optionally
normalised `(x - mean) / std` (PDVC `data_norm`), then all are concatenated on channels.

A missing file is reported; with `zero_fill_missing` it is replaced by zeros as PDVC does
(`read_file`: zeros (100, dim)), otherwise `MissingFeatureError` names the video and file.

Paths go through the path layer (`data_prep.infra.paths`): feature folders and HDF5 files may
be `gs://...`. `.npy` files are read from a file object; an HDF5 file (h5py needs a local
file) is opened from a local copy staged once per loader and removed by `close()`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Sequence

import numpy as np

from data_prep.infra import paths

log = logging.getLogger(__name__)
FORMATS = ("npy", "hdf5", "bmt_i3d")


class MissingFeatureError(FileNotFoundError):
    pass


class CorruptFeatureError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class FeatureSource:
    """One feature source. `dim` is needed only to zero-fill a video missing from the start."""

    name: str
    path: str
    format: str = "npy"
    pattern: str = "{video_id}.npy"
    dim: int | None = None
    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ValueError(
                f"feature source {self.name!r}: format {self.format!r} not in {FORMATS}")
        if self.std <= 0:
            raise ValueError(f"feature source {self.name!r}: std must be > 0, got {self.std}")

    @classmethod
    def from_mapping(cls, d) -> FeatureSource:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


def resize_nearest(feats: np.ndarray, num_steps: int) -> np.ndarray:
    """PDVC `resizeFeature(..., 'nearest')`: [N, D] -> [num_steps, D].

    scipy's interp1d "nearest" rounds half-way points down; reproduced by a search over the
    midpoints between sample positions.
    """
    feats = np.asarray(feats)
    n = len(feats)
    if n == 1:
        return np.repeat(feats.reshape(1, -1), num_steps, axis=0)
    if n == num_steps:
        return feats
    x_new = np.asarray([i * float(n - 1) / (num_steps - 1) for i in range(num_steps)])
    midpoints = (np.arange(1, n) + np.arange(0, n - 1)) / 2.0
    idx = np.searchsorted(midpoints, x_new, side="left")
    return feats[np.clip(idx, 0, n - 1)]


def _ids(video_id: str) -> dict[str, str]:
    return {"video_id": video_id, "youtube_id": video_id[2:] if video_id.startswith("v_")
            else video_id}


class FeatureLoader:
    """Loads and combines the sources of one video: `load(video_id) -> float32 [T, sum D]`."""

    def __init__(self, sources: Sequence[FeatureSource], num_steps: int = 100,
                 zero_fill_missing: bool = False, rescale: bool = True):
        if not sources:
            raise ValueError("at least one feature source is needed")
        self.sources = list(sources)
        self.num_steps = int(num_steps)
        self.zero_fill_missing = zero_fill_missing
        self.rescale = rescale
        self._dims: dict[str, int] = {s.name: s.dim for s in sources if s.dim}
        self._h5: dict[str, object] = {}
        self._staged = contextlib.ExitStack()  # local copies of remote HDF5 files
        self._listing: dict[str, set[str]] = {}  # source name -> file names in its folder

    # -------------------------------------------------------------------- single source
    def _h5file(self, source: FeatureSource):
        if source.name not in self._h5:
            import h5py

            local = self._staged.enter_context(paths.local_copy(source.path))
            self._h5[source.name] = h5py.File(local, "r")
        return self._h5[source.name]

    def close(self) -> None:
        """Closes HDF5 files and removes local copies of remote ones."""
        for f in self._h5.values():
            f.close()
        self._h5 = {}
        self._staged.close()

    def _file(self, source: FeatureSource, video_id: str, stream: str = "") -> str:
        return paths.join(source.path, source.pattern.format(**_ids(video_id), stream=stream))

    def describe(self, source: FeatureSource, video_id: str) -> str:
        if source.format == "hdf5":
            return f"{source.path}[{video_id}]"
        return self._file(source, video_id, "*")

    def _present(self, source: FeatureSource, video_id: str, stream: str = "") -> bool:
        """Whether the file exists: one listing of the folder per source (10k stat calls on a
        bucket take minutes; one listing takes seconds) unless the pattern has subfolders."""
        name = source.pattern.format(**_ids(video_id), stream=stream)
        if "/" in name:
            return paths.is_file(self._file(source, video_id, stream))
        if source.name not in self._listing:
            self._listing[source.name] = (set(paths.list_dir(source.path))
                                          if paths.is_dir(source.path) else set())
        return name in self._listing[source.name]

    def exists(self, source: FeatureSource, video_id: str) -> bool:
        ids = _ids(video_id)
        if source.format == "hdf5":
            f = self._h5file(source)
            return ids["video_id"] in f or ids["youtube_id"] in f
        if source.format == "bmt_i3d":
            return all(self._present(source, video_id, s) for s in ("rgb", "flow"))
        return self._present(source, video_id)

    @staticmethod
    def _load_npy(path: str) -> np.ndarray:
        try:
            with paths.open_file(path, "rb") as f:
                return np.load(f, allow_pickle=False)
        except (ValueError, EOFError) as e:  # truncated or not an .npy file
            raise CorruptFeatureError(f"{path}: unreadable .npy file ({e})") from None

    def _read(self, source: FeatureSource, video_id: str) -> np.ndarray:
        ids = _ids(video_id)
        if source.format == "hdf5":
            f = self._h5file(source)
            key = ids["video_id"] if ids["video_id"] in f else ids["youtube_id"]
            arr = np.asarray(f[key])
        elif source.format == "bmt_i3d":
            parts = [self._load_npy(self._file(source, video_id, s)) for s in ("rgb", "flow")]
            n = min(len(p) for p in parts)  # BMT's two streams can differ by a step
            arr = np.concatenate([p[:n] for p in parts], axis=-1)
        else:
            arr = self._load_npy(self._file(source, video_id))
        arr = np.asarray(arr, np.float32)
        if arr.ndim == 1:
            arr = arr[None]
        if arr.ndim != 2 or len(arr) == 0 or not np.all(np.isfinite(arr)):
            raise CorruptFeatureError(
                f"video {video_id}: features {self.describe(source, video_id)} have shape "
                f"{arr.shape} or non-finite values (expected a finite [N, D] array)")
        expected = self._dims.get(source.name)
        if expected is not None and arr.shape[1] != expected:
            raise CorruptFeatureError(
                f"video {video_id}: features {self.describe(source, video_id)} have {arr.shape[1]}"
                f" channels, source {source.name!r} has {expected}")
        self._dims.setdefault(source.name, arr.shape[1])
        return arr

    def load_source(self, source: FeatureSource, video_id: str) -> np.ndarray:
        """[T, D] of one source (resized and normalised)."""
        if not self.exists(source, video_id):
            where = self.describe(source, video_id)
            if not self.zero_fill_missing:
                raise MissingFeatureError(f"video {video_id}: missing features {where}")
            dim = self._dims.get(source.name)
            if dim is None:
                raise MissingFeatureError(
                    f"video {video_id}: missing features {where}, and the dimension of source "
                    f"{source.name!r} is unknown for zero filling (set its `dim`)")
            log.warning("video %s: %s missing, zero-filled (PDVC behaviour)", video_id, where)
            arr = np.zeros((self.num_steps, dim), np.float32)
        else:
            arr = self._read(source, video_id)
        if self.rescale:
            arr = resize_nearest(arr, self.num_steps)
        return ((arr - source.mean) / source.std).astype(np.float32)

    def load(self, video_id: str) -> np.ndarray:
        """[T, sum D] float32: every source resized, normalised, concatenated on channels."""
        parts = [self.load_source(s, video_id) for s in self.sources]
        lengths = {len(p) for p in parts}
        if len(lengths) != 1:
            raise CorruptFeatureError(
                f"video {video_id}: sources have different lengths {sorted(lengths)}; enable "
                "rescale to combine them")
        return np.concatenate(parts, axis=-1)

    def find_missing(self, video_ids: Sequence[str]) -> dict[str, list[str]]:
        """Video id -> names of the sources without a file for it (a cheap existence scan)."""
        out = {}
        for vid in video_ids:
            names = [s.name for s in self.sources if not self.exists(s, vid)]
            if names:
                out[vid] = names
        return out

    def __getstate__(self):  # HDF5 handles are reopened lazily in worker processes
        state = dict(self.__dict__)
        state["_h5"] = {}
        state["_staged"] = contextlib.ExitStack()
        return state
