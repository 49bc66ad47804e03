"""Import released PyTorch R(2+1)D weights (torchvision VideoResNet / TSP / IG65M / TAC).

Key layout (docs/reference.md section 2):
  [module.][features.]stem.{0,3}.weight            stem convs (O, I, T, H, W)
  [module.][features.]stem.{1,4}.{weight,bias,running_mean,running_var}
  ...layer{L}.{B}.conv{k}.0.0.weight               spatial conv (mid, in, 1, 3, 3)
  ...layer{L}.{B}.conv{k}.0.1.*                    mid BN
  ...layer{L}.{B}.conv{k}.0.3.weight               temporal conv (out, mid, 3, 1, 1)
  ...layer{L}.{B}.conv{k}.1.*                      block BN
  ...layer{L}.0.downsample.{0.weight,1.*}
  heads: TSP `fc1` (action), `fc2` (region); TAC / IG65M / torchvision `fc` (action).
IG65M files lack the `features.` prefix; DDP files may carry `module.`.

Conversion: conv (O, I, T, H, W) -> Flax (T, H, W, I, O); Linear (out, in) -> (in, out);
BN weight/bias -> params scale/bias, running_mean/var -> batch_stats mean/var;
`num_batches_tracked` is dropped. The backbone layout (blocks per stage, widths, stem width,
mid-plane rule) is inferred from the shapes, so one function serves every released variant.

torch is optional: only the CLI (`python -m sa_tsp_jax.import_torch CKPT.pth OUT_DIR`) needs
it, to unpickle the .pth; everything else works on a dict of numpy arrays. The CLI writes the
encoder export format (`sa_tsp_jax/export.py`) with the input geometry of the released TSP
models (16 frames, 15 fps, 128x171, crop 112, TSP normalisation) unless told otherwise
(`--clip_length`, `--fps`, `--resize`, `--crop`, or `--no_geometry` for weights whose
training input is unknown: extraction then needs the geometry in its config).
"""
from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Mapping

import numpy as np

from data_prep.infra import paths
from sa_tsp_jax import export
from sa_tsp_jax.models.r2plus1d import midplanes

HEAD_KEYS = {"fc1": "action_head", "fc2": "region_head", "fc": "action_head"}
_BN_FIELDS = {"weight": ("params", "scale"), "bias": ("params", "bias"),
              "running_mean": ("batch_stats", "mean"), "running_var": ("batch_stats", "var")}


def normalize_keys(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Strips `module.` and `features.` prefixes and converts values to numpy float32."""
    out = {}
    for key, value in state_dict.items():
        k = key
        for prefix in ("module.", "features."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        if k.endswith("num_batches_tracked"):
            continue
        out[k] = np.asarray(value, dtype=np.float32)
    return out


def infer_backbone_config(sd: Mapping[str, np.ndarray]) -> dict:
    """Backbone hyper-parameters (`R2Plus1D` fields) from a normalised state dict."""
    if "stem.0.weight" not in sd:
        raise KeyError("not an R(2+1)D state dict: no stem.0.weight (after stripping prefixes)")
    stage_sizes, widths = [], []
    for layer in range(1, 5):
        blocks = {int(m.group(1)) for k in sd if (m := re.match(rf"layer{layer}\.(\d+)\.", k))}
        if not blocks:
            break
        stage_sizes.append(max(blocks) + 1)
        widths.append(sd[f"layer{layer}.0.conv1.1.weight"].shape[0])
    rule = "tsp"
    if len(stage_sizes) > 1:
        w = widths[1]
        mid2 = sd["layer2.0.conv2.0.0.weight"].shape[0]
        if mid2 != midplanes(w, w):
            rule = "torchvision" if mid2 == midplanes(widths[0], w) else "unknown"
        if rule == "unknown":
            raise ValueError(f"layer2.0.conv2 has {mid2} mid planes: neither the TSP nor the "
                             "torchvision mid-plane rule")
    return dict(stage_sizes=tuple(stage_sizes), widths=tuple(widths),
                stem_width=int(sd["stem.0.weight"].shape[0]), midplane_rule=rule)


def _conv(w: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(w, (2, 3, 4, 1, 0)))


def _put(tree: dict, path: tuple[str, ...], value: np.ndarray) -> None:
    for p in path[:-1]:
        tree = tree.setdefault(p, {})
    if path[-1] in tree:
        raise ValueError(f"duplicate target {'/'.join(path)}")
    tree[path[-1]] = value


def convert_state_dict(state_dict: Mapping[str, np.ndarray]) -> tuple[dict, dict, list[str]]:
    """PyTorch state dict -> (variables {"params", "batch_stats"}, backbone config, unused keys).

    The backbone lands under `backbone/`, heads under `action_head` / `region_head`.
    """
    sd = normalize_keys(state_dict)
    cfg = infer_backbone_config(sd)
    variables: dict = {"params": {}, "batch_stats": {}}
    used: set[str] = set()

    def conv(src: str, dst: tuple[str, ...]):
        _put(variables["params"], ("backbone", *dst, "kernel"), _conv(sd[src]))
        used.add(src)

    def bn(src: str, dst: tuple[str, ...]):
        for field, (collection, name) in _BN_FIELDS.items():
            _put(variables[collection], ("backbone", *dst, name), sd[f"{src}.{field}"])
            used.add(f"{src}.{field}")

    conv("stem.0.weight", ("stem_spatial",))
    bn("stem.1", ("stem_spatial_bn",))
    conv("stem.3.weight", ("stem_temporal",))
    bn("stem.4", ("stem_temporal_bn",))
    for li, blocks in enumerate(cfg["stage_sizes"], start=1):
        for b in range(blocks):
            src, dst = f"layer{li}.{b}", f"layer{li}_{b}"
            for k in (1, 2):
                conv(f"{src}.conv{k}.0.0.weight", (dst, f"conv{k}", "spatial"))
                bn(f"{src}.conv{k}.0.1", (dst, f"conv{k}", "mid_bn"))
                conv(f"{src}.conv{k}.0.3.weight", (dst, f"conv{k}", "temporal"))
                bn(f"{src}.conv{k}.1", (dst, f"bn{k}"))
            if f"{src}.downsample.0.weight" in sd:
                conv(f"{src}.downsample.0.weight", (dst, "downsample"))
                bn(f"{src}.downsample.1", (dst, "downsample_bn"))
    for torch_name, ours in HEAD_KEYS.items():
        if f"{torch_name}.weight" in sd:
            _put(variables["params"], (ours, "kernel"),
                 np.ascontiguousarray(sd[f"{torch_name}.weight"].T))
            _put(variables["params"], (ours, "bias"), sd[f"{torch_name}.bias"])
            used.update({f"{torch_name}.weight", f"{torch_name}.bias"})
    unused = sorted(set(sd) - used)
    return variables, cfg, unused


def merge_into(target: dict, imported: dict, strict_backbone: bool = True) -> tuple[dict, list]:
    """Overwrites leaves of `target` (a model's variables) with imported ones of equal shape.

    Backbone leaves must all be present and match (unless strict_backbone=False); a head whose
    shape differs (e.g. 200 classes vs a new dataset's count) keeps its fresh init.
    Returns (new variables, list of "path: reason" for leaves that were not imported).
    """
    skipped = []

    def walk(t, i, path):
        if not isinstance(t, Mapping):
            if i is None:
                if strict_backbone and path and path[1] == "backbone":
                    raise KeyError(f"imported weights lack {'/'.join(path)}")
                skipped.append(f"{'/'.join(path)}: not in checkpoint")
                return t
            if tuple(np.shape(i)) != tuple(t.shape):
                if strict_backbone and path[1] == "backbone":
                    raise ValueError(f"{'/'.join(path)}: checkpoint shape {np.shape(i)} vs "
                                     f"model {tuple(t.shape)}")
                skipped.append(f"{'/'.join(path)}: shape {np.shape(i)} != {tuple(t.shape)}")
                return t
            return np.asarray(i, dtype=np.float32)
        return {k: walk(v, None if i is None else i.get(k), (*path, k)) for k, v in t.items()}

    return walk(target, imported, ()), skipped


def load_torch_checkpoint(path: str) -> dict[str, np.ndarray]:
    """Reads a .pth (TSP dict with a `model` entry, or a bare state dict) with torch (a remote
    file is staged through a local copy)."""
    try:
        import torch  # optional dependency, imported lazily
    except ImportError as e:
        raise ImportError("reading .pth files needs torch (`pip install torch`)") from e
    # TSP checkpoints pickle an argparse Namespace (`args`), which weights_only=True rejects;
    # only load files you trust.
    with paths.local_copy(path) as local:
        obj = torch.load(local, map_location="cpu", weights_only=False)
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        obj = obj["model"]
    elif isinstance(obj, Mapping) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return {k: v.detach().cpu().float().numpy() for k, v in obj.items() if hasattr(v, "detach")}


def main(argv=None) -> None:
    g = export.TSP_GEOMETRY
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="PyTorch .pth file")
    parser.add_argument("out_dir", help="export folder (variables/, backbone_config.json); "
                        "local or gs://")
    parser.add_argument("--clip_length", type=int, default=g.clip_length,
                        help="frames per clip the weights were trained on")
    parser.add_argument("--fps", type=float, default=g.fps, help="frame rate [frames/s]")
    parser.add_argument("--resize", default=",".join(map(str, g.resize)),
                        help="H,W frames are resized to before the crop [pixels]")
    parser.add_argument("--crop", type=int, default=g.crop, help="centre crop side [pixels]")
    parser.add_argument("--no_geometry", action="store_true",
                        help="record no input geometry (extraction configs must give it)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    geometry = None if args.no_geometry else export.InputGeometry(
        clip_length=args.clip_length, fps=args.fps,
        resize=tuple(int(x) for x in args.resize.split(",")), crop=args.crop)
    state_dict = load_torch_checkpoint(args.checkpoint)
    variables, cfg, unused = convert_state_dict(state_dict)
    if unused:
        logging.warning("%s: %d keys not imported: %s", args.checkpoint, len(unused), unused)
    export.save_variables(args.out_dir, variables, cfg, geometry)
    n = _count(variables["params"])
    logging.info("imported %s (%s, %d params, input %s) -> %s", args.checkpoint, cfg, n,
                 geometry, args.out_dir)


def _count(tree) -> int:
    if isinstance(tree, Mapping):
        return sum(_count(v) for v in tree.values())
    return int(np.prod(np.shape(tree)))


if __name__ == "__main__":
    main()
