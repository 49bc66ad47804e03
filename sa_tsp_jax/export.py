"""The encoder's export format: what sa_tsp_train and import_torch write, sa_tsp_extract reads.

An export folder (`<workdir>/params` after training, or an import_torch output) holds

  variables/             Orbax StandardCheckpoint of {"params", "batch_stats"} (numpy trees;
                         the backbone under "backbone", heads beside it)
  backbone_config.json   {"stage_sizes", "widths", "stem_width", "midplane_rule"}: the
                         `R2Plus1D` fields; and "input": the clip geometry the encoder was
                         trained on (`InputGeometry`), so extraction reads it instead of
                         restating it (exports written before the geometry existed lack it)

The folder may be local or on an object store (path layer; Orbax writes `gs://` itself).
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from data_prep.infra import distributed, paths
from data_prep.infra.atomic_files import atomic_write_json, read_json
from data_prep.pipelines.clip_transforms import TSP_MEAN, TSP_STD
from sa_tsp_jax.models.r2plus1d import R2Plus1D

log = logging.getLogger(__name__)

VARIABLES = "variables"
CONFIG_FILE = "backbone_config.json"
_BACKBONE_KEYS = ("stage_sizes", "widths", "stem_width", "midplane_rule")
# Compute dtypes by their config name (`model.dtype` of training, `dtype` of extraction).
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class InputGeometry:
    """The clips an encoder expects (extraction must feed the same).

    clip_length: frames per clip (T). fps: frame rate of the frames [frames/s] (the shards'
    stored rate). resize: (H, W) [pixels] frames are brought to before the crop. crop: side of
    the square centre crop [pixels]. mean / std: per-channel RGB normalisation of frames scaled
    to [0, 1], `(x / 255 - mean) / std`.
    """

    clip_length: int
    fps: float
    resize: tuple[int, int]
    crop: int
    mean: tuple[float, float, float] = TSP_MEAN
    std: tuple[float, float, float] = TSP_STD

    @classmethod
    def from_mapping(cls, d: Mapping) -> InputGeometry:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise KeyError(f"unknown input geometry fields {unknown}; known: {sorted(names)}")
        d = dict(d)
        return cls(clip_length=int(d["clip_length"]), fps=float(d["fps"]),
                   resize=tuple(int(x) for x in d["resize"]), crop=int(d["crop"]),
                   mean=tuple(float(x) for x in d.get("mean", TSP_MEAN)),
                   std=tuple(float(x) for x in d.get("std", TSP_STD)))

    def to_json(self) -> dict:
        return {"clip_length": self.clip_length, "fps": self.fps, "resize": list(self.resize),
                "crop": self.crop, "mean": list(self.mean), "std": list(self.std)}


# What the released TSP R(2+1)D-34 models were trained on (ActivityNet, TSP's defaults).
TSP_GEOMETRY = InputGeometry(clip_length=16, fps=15.0, resize=(128, 171), crop=112)


def save_variables(out_dir: str, variables: dict, backbone_config: Mapping,
                   geometry: InputGeometry | None = None) -> None:
    """Writes `variables/` (Orbax) and `backbone_config.json` (+ "input": geometry) in out_dir.

    Call it on every process: Orbax's save is collective (process 0 writes the arrays, the
    others take part in its barriers); only process 0 writes the JSON. `variables` must be host
    (numpy) trees, the same on every process. Orbax writes to a temporary folder and renames it
    when complete, so a reader never sees half-written arrays; the JSON is written atomically
    after them.
    """
    import orbax.checkpoint as ocp

    out_dir = paths.absolute(out_dir)
    if distributed.is_main_process():
        paths.make_dirs(out_dir)
    distributed.sync("sa_tsp_export_dir")
    host = jax.tree.map(np.asarray, variables)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(paths.join(out_dir, VARIABLES), host, force=True)
        ckptr.wait_until_finished()
    if distributed.is_main_process():
        cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in backbone_config.items()}
        if geometry is not None:
            cfg["input"] = geometry.to_json()
        atomic_write_json(paths.join(out_dir, CONFIG_FILE), cfg)
    distributed.sync("sa_tsp_export_done")


def load_variables(out_dir: str) -> tuple[dict, dict]:
    """Reads what `save_variables` wrote: (numpy variables, backbone config with tuples).

    The backbone config holds exactly the `R2Plus1D` fields (the geometry: `load_geometry`).
    """
    import orbax.checkpoint as ocp

    cfg = _read_config(out_dir)
    with ocp.StandardCheckpointer() as ckptr:
        variables = ckptr.restore(paths.join(paths.absolute(out_dir), VARIABLES))
    backbone = {k: cfg[k] for k in _BACKBONE_KEYS}
    backbone["stage_sizes"] = tuple(backbone["stage_sizes"])
    backbone["widths"] = tuple(backbone["widths"])
    return jax.tree.map(np.asarray, variables), backbone


def load_geometry(out_dir: str) -> InputGeometry | None:
    """The input geometry recorded with the export, or None for an export without one."""
    cfg = _read_config(out_dir)
    return InputGeometry.from_mapping(cfg["input"]) if "input" in cfg else None


def _read_config(out_dir: str) -> dict:
    path = paths.join(out_dir, CONFIG_FILE)
    cfg = read_json(path)
    missing = [k for k in _BACKBONE_KEYS if k not in cfg]
    if missing:
        raise ValueError(f"{path}: not an encoder export (missing {missing})")
    return cfg


def load_encoder(params_dir: str, dtype: str = "float32") -> tuple[R2Plus1D, dict]:
    """The backbone module (computing in `dtype`) and its numpy variables
    {"params", "batch_stats"} from an export folder (heads left out)."""
    variables, cfg = load_variables(params_dir)
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r}: expected one of {sorted(DTYPES)}")
    model = R2Plus1D(**cfg, dtype=DTYPES[dtype])
    return model, {"params": variables["params"]["backbone"],
                   "batch_stats": variables["batch_stats"]["backbone"]}
