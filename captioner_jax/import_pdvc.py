"""Import a released PDVC checkpoint (PyTorch) as a captioner run of this project.

    python -m captioner_jax.import_pdvc model-best.pth OUT_DIR [--vocab vocabulary.json]
        [--info info.json] [--mode queries|gt_proposals]

PDVC saves `model-best.pth` = {"epoch", "model": state dict, "optimizer"} and its settings
(`opt`) in `info.json` next to it (`["best"]["opt"]`); a checkpoint that carries `opt` itself
is read too. The vocabulary is PDVC's `vocabulary_activitynet.json` (`--vocab`, else the
`dict_file` of `opt`, looked up relative to the working directory and the checkpoint's
folders). OUT_DIR becomes what `captioner_predict` / `caption_video` read as a trained run
(`init_from`): `best/` (an Orbax checkpoint {"params"} at step 0), `vocab.json`,
`model_info.json` (captioner_jax/build.py) and `import_report.json` (the unused and aliased
keys, the PDVC settings used).

Key layout (PDVC module names; `module.` prefixes of DDP files are dropped):
  base_encoder.input_proj.{l}.0.{weight,bias}       Conv1d (O, I, K) -> Flax (K, I, O)
  base_encoder.input_proj.{l}.1.{weight,bias}       GroupNorm -> scale / bias
  base_encoder.pos_embed.duration_embed_layer.*    Linear(256, 256)
  transformer.level_embed                           (L, D)
  transformer.encoder.layers.{i}.self_attn.{sampling_offsets,attention_weights,value_proj,
      output_proj}.*, .norm1, .linear1, .linear2, .norm2
  transformer.decoder.layers.{i}.self_attn.{in_proj_weight,in_proj_bias,out_proj.*}
      (nn.MultiheadAttention: q/k/v stacked on rows), .norm2, .cross_attn.*, .norm1,
      .linear1, .linear2, .norm3
  transformer.{reference_points,pos_trans,pos_trans_norm}.*, query_embed.weight
  {class_head,count_head}.{i}.*, bbox_head.{i}.layers.{0,1,2}.*   (one per decoder layer)
  caption_head.{i}.{embed.weight, logit.*, core.rnn.weight_{ih,hh}_l0,
      core.deformable_att.{sampling_offsets,value_proj}.*, core.{ctx2att,h2att,alpha_net}.*}
Linear (out, in) -> Flax kernel (in, out).

Aliases (same tensors under a second name, checked equal and not imported twice):
`transformer.decoder.bbox_head.*` (PDVC's refinement hook) and, with `share_caption_head=1`,
`caption_head.{i}` for every layer. With `share_caption_head=0` only the last layer's caption
head produces captions at inference (PDVC captions with `caption_head[-1]`), so it is the one
imported; the other layers' heads are listed as unused, as are the caption sampler's
`attention_weights` / `output_proj` (PDVC builds them and never uses them).

`with_box_refine=0` checkpoints import with `box_refine=False` (fixed references; PDVC's
shared heads appear once per layer in its state dict and fill every layer). Not importable
(one error naming the setting): multi-layer caption LSTMs (`num_layers > 1`) and
`learnt_proposals`.

torch is optional: only reading the .pth needs it (imported lazily); `convert_state_dict`
works on a dict of numpy arrays.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
from collections.abc import Callable, Mapping

import numpy as np

from data_prep.infra import paths

log = logging.getLogger(__name__)

IMPORT_REPORT = "import_report.json"

# PDVC opt key -> (model field, converter). All are required (PDVC's info.json holds them).
_OPT_FIELDS = {
    "hidden_dim": ("hidden_dim", int),
    "nheads": ("num_heads", int),
    "transformer_ff_dim": ("ffn_dim", int),
    "transformer_dropout_prob": ("dropout", float),
    "enc_layers": ("enc_layers", int),
    "dec_layers": ("dec_layers", int),
    "num_feature_levels": ("num_levels", int),
    "enc_n_points": ("enc_points", int),
    "dec_n_points": ("dec_points", int),
    "num_queries": ("num_queries", int),
    "max_eseq_length": ("max_event_count", int),
    "cap_nheads": ("cap_heads", int),
    "cap_num_feature_levels": ("cap_levels", int),
    "cap_dec_n_points": ("cap_points", int),
    "rnn_size": ("rnn_size", int),
    "input_encoding_size": ("word_dim", int),
    "att_hid_size": ("att_hid", int),
    "drop_prob": ("cap_dropout", float),
}
_CAPTION_HEADS = {"standard": "lstm_dsa", "light": "light"}
MODES = ("queries", "gt_proposals")


class PDVCImportError(ValueError):
    """A checkpoint that cannot become this model: names the key or setting."""


def _truthy(v) -> bool:
    return bool(int(v)) if isinstance(v, (int, float, str)) and str(v).strip() else bool(v)


def model_settings(opt: Mapping, mode: str | None = None) -> tuple[dict, str]:
    """PDVC `opt` -> (model fields of captioner_jax.build.MODEL_FIELDS, mode)."""
    missing = [k for k in (*_OPT_FIELDS, "caption_decoder_type") if k not in opt]
    if missing:
        raise PDVCImportError(f"PDVC opt lacks {missing}: pass the run's info.json (--info)")
    model = {field: conv(opt[key]) for key, (field, conv) in _OPT_FIELDS.items()}
    head = str(opt["caption_decoder_type"])
    if head not in _CAPTION_HEADS:
        raise PDVCImportError(f"opt caption_decoder_type={head!r}: only {sorted(_CAPTION_HEADS)} "
                           "caption heads exist here")
    model["caption_head"] = _CAPTION_HEADS[head]
    if int(opt.get("num_layers", 1)) != 1:
        raise PDVCImportError(f"opt num_layers={opt['num_layers']}: the caption LSTM here has one "
                           "layer (PDVC's configs use 1)")
    mode = mode or str(opt.get("transformer_input_type", "queries"))
    if mode not in MODES:
        raise PDVCImportError(f"transformer_input_type {mode!r} is not supported; use {MODES}")
    if not _truthy(opt.get("with_box_refine", 0)):
        # PDVC then shares one class / counter / box head over the layers (its state dict
        # still names one per layer) and keeps the initial references.
        model["box_refine"] = False
    return model, mode


# --------------------------------------------------------------------------- key mapping
def _t(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.T)


def _conv(x: np.ndarray) -> np.ndarray:  # Conv1d (O, I, K) -> (K, I, O)
    return np.ascontiguousarray(np.transpose(x, (2, 1, 0)))


def _same(x: np.ndarray) -> np.ndarray:
    return x


def _linear(prefix: str, key: str) -> dict:
    return {(*prefix, "kernel"): (f"{key}.weight", _t), (*prefix, "bias"): (f"{key}.bias", _same)}


def _norm(prefix: tuple, key: str) -> dict:
    return {(*prefix, "scale"): (f"{key}.weight", _same), (*prefix, "bias"): (f"{key}.bias", _same)}


def _mha(prefix: tuple, key: str, d: int, heads: int) -> dict:
    """nn.MultiheadAttention (in_proj rows: q, k, v) -> Flax MultiHeadDotProductAttention."""
    dh = d // heads
    out = {}
    for i, name in enumerate(("query", "key", "value")):
        rows = slice(i * d, (i + 1) * d)
        out[(*prefix, name, "kernel")] = (
            f"{key}.in_proj_weight", lambda w, r=rows: _t(w[r]).reshape(d, heads, dh))
        out[(*prefix, name, "bias")] = (
            f"{key}.in_proj_bias", lambda b, r=rows: b[r].reshape(heads, dh))
    out[(*prefix, "out", "kernel")] = (f"{key}.out_proj.weight",
                                       lambda w: _t(w).reshape(heads, dh, d))
    out[(*prefix, "out", "bias")] = (f"{key}.out_proj.bias", _same)
    return out


def _deform(prefix: tuple, key: str, names=("sampling_offsets", "attention_weights",
                                             "value_proj", "output_proj")) -> dict:
    out = {}
    for n in names:
        out.update(_linear((*prefix, n), f"{key}.{n}"))
    return out


def key_map(model: Mapping, caption_index: int) -> dict[tuple, tuple[str, Callable]]:
    """Flax param path -> (PDVC key, numpy transform) for every parameter of the model."""
    d, heads = int(model["hidden_dim"]), int(model["num_heads"])
    m: dict[tuple, tuple[str, Callable]] = {}
    for lv in range(int(model["num_levels"])):
        m[("base_encoder", f"input_proj_{lv}", "kernel")] = (
            f"base_encoder.input_proj.{lv}.0.weight", _conv)
        m[("base_encoder", f"input_proj_{lv}", "bias")] = (
            f"base_encoder.input_proj.{lv}.0.bias", _same)
        m.update(_norm(("base_encoder", f"norm_{lv}"), f"base_encoder.input_proj.{lv}.1"))
    m.update(_linear(("base_encoder", "pos_embed", "duration", "Dense_0"),
                     "base_encoder.pos_embed.duration_embed_layer"))
    m[("level_embed",)] = ("transformer.level_embed", _same)
    for i in range(int(model["enc_layers"])):
        src = f"transformer.encoder.layers.{i}"
        m.update(_deform((f"encoder_{i}", "self_attn"), f"{src}.self_attn"))
        m.update(_norm((f"encoder_{i}", "norm1"), f"{src}.norm1"))
        m.update(_linear((f"encoder_{i}", "ffn", "linear1"), f"{src}.linear1"))
        m.update(_linear((f"encoder_{i}", "ffn", "linear2"), f"{src}.linear2"))
        m.update(_norm((f"encoder_{i}", "ffn", "norm"), f"{src}.norm2"))
    for i in range(int(model["dec_layers"])):
        src = f"transformer.decoder.layers.{i}"
        m.update(_mha((f"decoder_{i}", "self_attn"), f"{src}.self_attn", d, heads))
        m.update(_norm((f"decoder_{i}", "norm2"), f"{src}.norm2"))
        m.update(_deform((f"decoder_{i}", "cross_attn"), f"{src}.cross_attn"))
        m.update(_norm((f"decoder_{i}", "norm1"), f"{src}.norm1"))
        m.update(_linear((f"decoder_{i}", "ffn", "linear1"), f"{src}.linear1"))
        m.update(_linear((f"decoder_{i}", "ffn", "linear2"), f"{src}.linear2"))
        m.update(_norm((f"decoder_{i}", "ffn", "norm"), f"{src}.norm3"))
        m.update(_linear((f"class_heads_{i}",), f"class_head.{i}"))
        m.update(_linear((f"count_heads_{i}",), f"count_head.{i}"))
        for j in range(3):
            m.update(_linear((f"bbox_heads_{i}", f"Dense_{j}"), f"bbox_head.{i}.layers.{j}"))
    m[("query_embed",)] = ("query_embed.weight", _same)
    m.update(_linear(("reference_points",), "transformer.reference_points"))
    m.update(_linear(("pos_trans",), "transformer.pos_trans"))
    m.update(_norm(("pos_trans_norm",), "transformer.pos_trans_norm"))
    cap = f"caption_head.{caption_index}"
    m[("caption_cell", "embed", "embedding")] = (f"{cap}.embed.weight", _same)
    m.update(_linear(("caption_cell", "logit"), f"{cap}.logit"))
    m[("caption_cell", "lstm", "ih", "kernel")] = (f"{cap}.core.rnn.weight_ih_l0", _t)
    m[("caption_cell", "lstm", "hh", "kernel")] = (f"{cap}.core.rnn.weight_hh_l0", _t)
    if model["caption_head"] == "lstm_dsa":
        m.update(_deform(("caption_cell", "sampler"), f"{cap}.core.deformable_att",
                         ("sampling_offsets", "value_proj")))
        for n in ("ctx2att", "h2att", "alpha_net"):
            m.update(_linear(("caption_cell", n), f"{cap}.core.{n}"))
    return m


# Parameters a mode never reads: absent from a checkpoint they are filled with zeros.
_UNUSED_IN_MODE = {
    "queries": ("pos_trans", "pos_trans_norm"),
    "gt_proposals": ("query_embed", "reference_points", "bbox_heads_"),
}


def _unused_in_mode(path: tuple, mode: str) -> bool:
    return any(path[0] == p or (p.endswith("_") and path[0].startswith(p))
               for p in _UNUSED_IN_MODE[mode])


def _alias_of(key: str, caption_index: int, share: bool) -> str | None:
    """The imported key a second name duplicates (None: not an alias)."""
    if key.startswith("transformer.decoder.bbox_head."):
        return key[len("transformer.decoder."):]
    m = re.match(r"caption_head\.(\d+)\.(.*)", key)
    if share and m and int(m.group(1)) != caption_index:
        return f"caption_head.{caption_index}.{m.group(2)}"
    return None


def convert_state_dict(state_dict: Mapping[str, np.ndarray], opt: Mapping,
                       mode: str | None = None) -> tuple[dict, dict, str, dict]:
    """PDVC state dict (numpy) + opt -> (params, model settings, mode, report).

    report: {"unused": [keys not imported], "aliases": {key: key it duplicates},
    "filled": [Flax paths absent from the checkpoint and unused in `mode` (zeros)],
    "feature_dim", "vocab_size"}. A missing key, a shape mismatch or an alias that differs
    from its original is one PDVCImportError naming the key.
    """
    import jax
    import jax.numpy as jnp

    from captioner_jax.build import build_model
    from captioner_jax.models.pdvc import PDVC
    from data_prep.infra.tree_names import key_path_name

    sd = {k[len("module."):] if k.startswith("module.") else k: np.asarray(v, np.float32)
          for k, v in state_dict.items()}
    model_cfg, mode = model_settings(opt, mode)
    share = _truthy(opt.get("share_caption_head", 1))
    caption_index = 0 if share else int(model_cfg["dec_layers"]) - 1
    for key in ("base_encoder.input_proj.0.0.weight", f"caption_head.{caption_index}.embed.weight"):
        if key not in sd:
            raise PDVCImportError(f"checkpoint has no {key!r}: not a PDVC state dict")
    feature_dim = int(sd["base_encoder.input_proj.0.0.weight"].shape[1])
    if "feature_dim" in opt and int(opt["feature_dim"]) != feature_dim:
        raise PDVCImportError(f"opt feature_dim={opt['feature_dim']} but base_encoder.input_proj."
                           f"0.0.weight reads {feature_dim} channels")
    num_outputs = int(sd[f"caption_head.{caption_index}.embed.weight"].shape[0])
    model = build_model(model_cfg, num_outputs)
    b, t = 1, 16
    abstract = jax.eval_shape(lambda: model.init(
        {"params": jax.random.PRNGKey(0)}, jnp.zeros((b, t, feature_dim)), jnp.ones((b, t), bool),
        jnp.ones((b,)), method=PDVC.init_all))["params"]
    mapping = key_map(model_cfg, caption_index)
    used: set[str] = set()
    filled: list[str] = []

    def convert(path, leaf):
        names = tuple(p.key for p in path)
        name = key_path_name(path)
        if names not in mapping:
            raise PDVCImportError(f"no PDVC key is known for parameter {name} (importer bug)")
        key, fn = mapping[names]
        if key not in sd:
            if _unused_in_mode(names, mode):
                filled.append(name)
                return np.zeros(leaf.shape, np.float32)
            raise PDVCImportError(f"checkpoint lacks {key!r} (parameter {name})")
        try:
            value = fn(sd[key])
        except ValueError as err:
            raise PDVCImportError(f"{key!r} of shape {sd[key].shape} does not fit parameter "
                               f"{name} {tuple(leaf.shape)}: {err}") from None
        if value.shape != tuple(leaf.shape):
            raise PDVCImportError(f"{key!r} of shape {sd[key].shape} does not fit parameter "
                               f"{name} {tuple(leaf.shape)} (settings {model_cfg})")
        used.add(key)
        return value.astype(np.float32)

    params = jax.tree_util.tree_map_with_path(convert, abstract)
    aliases, unused = {}, []
    for key in sorted(sd):
        if key in used:
            continue
        orig = _alias_of(key, caption_index, share)
        if orig is not None and orig in sd:
            if orig in used and not np.array_equal(sd[key], sd[orig]):
                raise PDVCImportError(f"{key!r} should equal {orig!r} (PDVC shares them) but "
                                   "differs")
            aliases[key] = orig
        else:
            unused.append(key)
    report = {"unused": unused, "aliases": aliases, "filled": filled,
              "feature_dim": feature_dim, "vocab_size": num_outputs - 1,
              "caption_head_imported": f"caption_head.{caption_index}"}
    return params, model_cfg, mode, report


def to_state_dict(params, model_cfg: Mapping, share_caption_head: bool = True) -> dict:
    """The inverse of `convert_state_dict`: Flax params -> a PDVC-named state dict (numpy),
    with PDVC's aliases (`transformer.decoder.bbox_head.*`, one caption head per decoder
    layer). Lets a run of this project be read by PDVC's code, and tests the key map."""
    import jax

    flat = {tuple(p.key for p in path): np.asarray(v, np.float32)
            for path, v in jax.tree_util.tree_flatten_with_path(params)[0]}
    dec_layers = int(model_cfg["dec_layers"])
    caption_index = 0 if share_caption_head else dec_layers - 1
    d = int(model_cfg["hidden_dim"])
    sd: dict[str, np.ndarray] = {}
    for path, (key, fn) in key_map(model_cfg, caption_index).items():
        x = flat[path]
        if len(path) > 1 and path[-2] in ("query", "key", "value"):
            i = ("query", "key", "value").index(path[-2])
            full = sd.setdefault(key, np.zeros((3 * d, d) if path[-1] == "kernel" else (3 * d,),
                                               np.float32))
            full[i * d:(i + 1) * d] = x.reshape(d, d).T if path[-1] == "kernel" else x.reshape(d)
        elif len(path) > 1 and path[-2:] == ("out", "kernel"):
            sd[key] = np.ascontiguousarray(x.reshape(d, d).T)
        else:
            sd[key] = fn(x)  # _t and _conv are their own inverses
    for key in [k for k in sd if k.startswith("bbox_head.")]:
        sd[f"transformer.decoder.{key}"] = sd[key]
    prefix = f"caption_head.{caption_index}."
    for key in [k for k in sd if k.startswith(prefix)]:
        for j in range(dec_layers):
            sd[f"caption_head.{j}.{key[len(prefix):]}"] = sd[key]
    return sd


# --------------------------------------------------------------------------- files
def load_checkpoint(path: str) -> tuple[dict[str, np.ndarray], dict | None]:
    """.pth -> (state dict as numpy, opt or None). Needs torch (lazily imported)."""
    try:
        import torch
    except ImportError as e:
        raise ImportError("reading PDVC .pth files needs torch (`pip install torch`; only "
                          "for reading)") from e
    # PDVC checkpoints may pickle argparse Namespaces; only load files you trust.
    with paths.local_copy(path) as local:
        obj = torch.load(local, map_location="cpu", weights_only=False)
    opt = None
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        opt = obj.get("opt")
        obj = obj["model"]
    if not isinstance(obj, Mapping):
        raise PDVCImportError(f"{path}: expected a PDVC checkpoint with a 'model' state dict, got "
                           f"{type(obj).__name__}")
    if opt is not None and not isinstance(opt, Mapping):
        opt = vars(opt)
    sd = {k: v.detach().cpu().float().numpy() for k, v in obj.items() if hasattr(v, "detach")}
    return sd, opt


def read_opt(info_path: str) -> dict:
    """PDVC's info.json -> the best run's opt (or a plain opt dict)."""
    raw = json.loads(paths.read_text(info_path))
    if isinstance(raw.get("best"), Mapping) and "opt" in raw["best"]:
        return dict(raw["best"]["opt"])
    if "opt" in raw:
        return dict(raw["opt"])
    return dict(raw)


def _find_vocab(opt: Mapping, checkpoint: str) -> str:
    rel = str(opt.get("dict_file") or "")
    if not rel:
        raise PDVCImportError("no vocabulary: pass --vocab (PDVC's vocabulary_activitynet.json)")
    folder = paths.as_path(checkpoint).parent
    candidates = [rel, str(folder / rel), str(folder.parent / rel), str(folder.parent.parent / rel)]
    for c in candidates:
        if paths.is_file(c):
            return c
    raise PDVCImportError(f"vocabulary {rel!r} (opt dict_file) not found in {candidates}; pass "
                       "--vocab (PDVC's data/anet/vocabulary_activitynet.json)")


def import_checkpoint(checkpoint: str, out_dir: str, *, vocab_path: str = "",
                      info_path: str = "", mode: str | None = None,
                      state_dict: Mapping | None = None, opt: Mapping | None = None) -> dict:
    """Writes the run directory (module docstring) and returns the import report.
    `state_dict` / `opt` skip reading `checkpoint` (tests, already loaded files)."""
    from captioner_jax import build
    from data_prep.infra import distributed
    from data_prep.infra.atomic_files import atomic_write_json
    from data_prep.infra.checkpointing import Checkpointer
    from data_prep.text.caption_vocab import CaptionVocab

    if state_dict is None:
        state_dict, saved_opt = load_checkpoint(checkpoint)
        opt = opt or saved_opt
    if info_path:
        opt = read_opt(info_path)
    elif opt is None:
        guess = str(paths.as_path(checkpoint).parent / "info.json")
        if not paths.is_file(guess):
            raise PDVCImportError(f"{checkpoint} holds no opt and {guess} does not exist: pass "
                               "--info (PDVC's info.json of the run)")
        opt = read_opt(guess)
    params, model_cfg, mode, report = convert_state_dict(state_dict, opt, mode)
    vocab_path = vocab_path or _find_vocab(opt, checkpoint)
    vocab = CaptionVocab.load(vocab_path)
    if vocab.size != report["vocab_size"]:
        raise PDVCImportError(f"vocabulary {vocab_path} has {vocab.size} words but the "
                           f"checkpoint's caption head has {report['vocab_size']} (+1 for index "
                           "0): not the vocabulary it was trained with")
    num_steps = int(opt.get("frame_embedding_num", 100))
    info = {"format": build.MODEL_INFO_FORMAT, "model": model_cfg, "mode": mode,
            "feature_dim": report["feature_dim"], "num_steps": num_steps,
            "vocab": {"file": build.VOCAB_FILE, "size": vocab.size,
                      "sha256": build.vocab_digest(vocab)}}
    paths.make_dirs(out_dir)
    build.write_model_info(out_dir, info, vocab)
    with Checkpointer(paths.join(out_dir, "best"), max_to_keep=1) as ckpt:
        ckpt.save(0, {"params": params}, force=True)
    report.update(source=str(checkpoint), vocab_source=str(vocab_path), mode=mode,
                  model=model_cfg, pdvc_opt={k: opt[k] for k in (
                      "ec_alpha", "max_caption_len", "share_caption_head", "with_box_refine",
                      "transformer_input_type", "visual_feature_type") if k in opt})
    if distributed.is_main_process():
        atomic_write_json(paths.join(out_dir, IMPORT_REPORT), report, default=str)
    return report


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="PDVC .pth (e.g. save/anet_tsp_pdvc/model-best.pth)")
    parser.add_argument("out_dir", help="run directory to write (local or gs://)")
    parser.add_argument("--vocab", default="", help="PDVC vocabulary json (default: opt "
                        "dict_file)")
    parser.add_argument("--info", default="", help="PDVC info.json (default: next to the "
                        "checkpoint, unless the checkpoint carries opt)")
    parser.add_argument("--mode", choices=MODES, default=None,
                        help="default: opt transformer_input_type")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    report = import_checkpoint(args.checkpoint, args.out_dir, vocab_path=args.vocab,
                               info_path=args.info, mode=args.mode)
    if report["unused"]:
        log.warning("%d checkpoint keys not imported: %s", len(report["unused"]),
                    report["unused"])
    if report["filled"]:
        log.info("absent and unused in mode %s (zeros): %s", report["mode"], report["filled"])
    log.info("imported %s (%s, mode %s, %d aliases) -> %s", args.checkpoint, report["model"],
             report["mode"], len(report["aliases"]), args.out_dir)


if __name__ == "__main__":
    main()
