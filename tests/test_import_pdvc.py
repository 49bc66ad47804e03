"""PDVC checkpoint import (captioner_jax/import_pdvc.py).

Without torch: the key map round-trips (Flax params -> PDVC names -> Flax params, bitwise),
the run directory it writes is what captioner_predict reads, and every broken checkpoint is
one error naming the key or setting. With torch (optional, skipped otherwise): a PDVC module
tree written in plain PyTorch (tests/pdvc_torch_reference.py) with random weights is saved as
PDVC saves it (model-best.pth + info.json), imported through the CLI, and the JAX model's
memory, decoder states, class logits, counts, boxes and greedy caption ids equal PyTorch's.
"""
from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from captioner_jax import build, import_pdvc, inference
from captioner_jax.models.pdvc import PDVC
from data_prep.text.caption_vocab import CaptionVocab

VOCAB = 12  # words (the caption head has VOCAB + 1 outputs)
FEAT_DIM, STEPS, MAX_LEN = 8, 20, 6

OPT = dict(
    hidden_dim=32, nheads=4, transformer_ff_dim=32, transformer_dropout_prob=0.1,
    enc_layers=2, dec_layers=2, num_feature_levels=4, enc_n_points=2, dec_n_points=2,
    num_queries=5, max_eseq_length=3, cap_nheads=1, cap_num_feature_levels=4,
    cap_dec_n_points=2, rnn_size=32, input_encoding_size=32, att_hid_size=16, drop_prob=0.5,
    caption_decoder_type="standard", num_layers=1, with_box_refine=1, share_caption_head=1,
    transformer_input_type="queries", feature_dim=FEAT_DIM, frame_embedding_num=STEPS,
    dict_file="data/vocab.json", ec_alpha=1.0,
)


def write_vocab(path) -> CaptionVocab:
    vocab = CaptionVocab([f"w{i}" for i in range(VOCAB - 1)] + ["UNK"])
    path.parent.mkdir(parents=True, exist_ok=True)
    vocab.save(str(path))
    return vocab


@pytest.fixture(scope="module")
def jax_params():
    cfg, _ = import_pdvc.model_settings(OPT)
    model = build.build_model(cfg, VOCAB + 1)
    params = jax.jit(lambda: model.init(
        {"params": jax.random.PRNGKey(1)}, jnp.zeros((1, STEPS, FEAT_DIM)),
        jnp.ones((1, STEPS), bool), jnp.ones((1,)), method=PDVC.init_all))()
    return cfg, jax.tree.map(np.asarray, params["params"])


def test_round_trip_writes_a_run_captioner_predict_reads(tmp_path, jax_params):
    cfg, params = jax_params
    sd = import_pdvc.to_state_dict(params, cfg)
    assert "transformer.decoder.bbox_head.1.layers.2.weight" in sd  # PDVC's alias
    assert sd["base_encoder.input_proj.1.0.weight"].shape == (32, FEAT_DIM, 3)
    write_vocab(tmp_path / "data" / "vocab.json")
    out = tmp_path / "run"
    report = import_pdvc.import_checkpoint(str(tmp_path / "save" / "x" / "model.pth"), str(out),
                                           state_dict=sd, opt=OPT)
    assert report["unused"] == [] and report["filled"] == []
    assert len(report["aliases"]) > 0 and all(k.startswith(("transformer.decoder.bbox_head",
                                                             "caption_head.1."))
                                              for k in report["aliases"])
    trained = build.load_trained_run(str(out))
    assert trained.info["mode"] == "queries" and trained.info["feature_dim"] == FEAT_DIM
    assert trained.info["num_steps"] == STEPS and trained.vocab.size == VOCAB
    assert trained.build_model() == build.build_model(cfg, VOCAB + 1)
    restored, which, step = inference.restore_params(str(out))
    assert (which, step) == ("best", 0)
    jax.tree.map(np.testing.assert_array_equal, params, jax.tree.map(np.asarray, restored))
    saved = json.loads((out / import_pdvc.IMPORT_REPORT).read_text())
    assert saved["pdvc_opt"]["ec_alpha"] == 1.0


def test_broken_checkpoints_are_one_error_naming_the_key(jax_params):
    cfg, params = jax_params
    sd = import_pdvc.to_state_dict(params, cfg)
    convert = import_pdvc.convert_state_dict
    err = import_pdvc.PDVCImportError

    missing = {k: v for k, v in sd.items() if k != "transformer.encoder.layers.1.norm2.weight"}
    with pytest.raises(err, match=r"lacks 'transformer\.encoder\.layers\.1\.norm2\.weight'"):
        convert(missing, OPT)
    wrong = dict(sd, **{"count_head.0.weight": np.zeros((7, 32), np.float32)})
    with pytest.raises(err, match=r"'count_head\.0\.weight' of shape \(7, 32\)"):
        convert(wrong, OPT)
    alias = dict(sd, **{"caption_head.1.logit.bias": sd["caption_head.0.logit.bias"] + 1})
    with pytest.raises(err, match=r"'caption_head\.1\.logit\.bias' should equal"):
        convert(alias, OPT)
    _, settings, _, _ = convert(sd, dict(OPT, with_box_refine=0))
    assert settings["box_refine"] is False
    with pytest.raises(err, match=r"opt lacks \['nheads'\]"):
        convert(sd, {k: v for k, v in OPT.items() if k != "nheads"})
    with pytest.raises(err, match="feature_dim=9"):
        convert(sd, dict(OPT, feature_dim=9))

    extra = dict(sd, **{"caption_head.0.core.deformable_att.output_proj.weight":
                        np.zeros((32, 32), np.float32), "criterion.empty_weight": np.ones(2)})
    _, _, _, report = convert(extra, OPT)
    assert report["unused"] == ["caption_head.0.core.deformable_att.output_proj.weight",
                                "criterion.empty_weight"]
    # Not shared: the last layer's caption head is imported, the others are unused.
    clones = dict(sd, **{"caption_head.0.logit.bias": sd["caption_head.0.logit.bias"] + 1})
    got, _, _, report = convert(clones, dict(OPT, share_caption_head=0))
    assert report["caption_head_imported"] == "caption_head.1"
    assert "caption_head.0.logit.bias" in report["unused"]
    np.testing.assert_array_equal(got["caption_cell"]["logit"]["bias"],
                                  sd["caption_head.1.logit.bias"])
    # GT-proposal checkpoints may lack what that mode never reads.
    gt = {k: v for k, v in sd.items() if not k.startswith(("query_embed", "transformer.ref"))}
    _, _, mode, report = convert(gt, dict(OPT, transformer_input_type="gt_proposals"))
    assert mode == "gt_proposals" and "query_embed" in report["filled"]


def test_vocabulary_of_another_size_is_refused(tmp_path, jax_params):
    cfg, params = jax_params
    sd = import_pdvc.to_state_dict(params, cfg)
    vocab = CaptionVocab(["a", "UNK"])
    vocab.save(str(tmp_path / "v.json"))
    with pytest.raises(import_pdvc.PDVCImportError, match="has 2 words but"):
        import_pdvc.import_checkpoint("x.pth", str(tmp_path / "run"), state_dict=sd, opt=OPT,
                                      vocab_path=str(tmp_path / "v.json"))


# ----------------------------------------------------------------------------- torch parity
def _torch_model(torch, opt):
    from tests import pdvc_torch_reference as ref

    torch.manual_seed(0)
    model = ref.PDVC(opt, FEAT_DIM, VOCAB)
    # Random weights everywhere (PDVC zero-initialises offset/attention kernels and the last
    # box layer, which would hide mapping errors).
    for p in model.parameters():
        p.data.normal_(0.0, 0.2)
    for m in model.modules():
        if isinstance(m, (torch.nn.LayerNorm, torch.nn.GroupNorm)):
            m.weight.data = 1.0 + 0.1 * torch.randn_like(m.weight)
    return model.eval()


def _first_eos(tokens):
    tokens = np.asarray(tokens)
    return tokens * np.cumprod(tokens > 0, axis=-1)


@pytest.mark.parametrize("share,mode,refine", [
    (1, "queries", 1), (0, "queries", 1), (1, "gt_proposals", 1), (1, "queries", 0)])
def test_parity_with_a_pytorch_pdvc(tmp_path, share, mode, refine):
    torch = pytest.importorskip("torch", reason="optional: the PDVC parity check needs torch")
    opt = dict(OPT, share_caption_head=share, transformer_input_type=mode,
               with_box_refine=refine)
    model_t = _torch_model(torch, opt)
    run_dir = tmp_path / "save" / "anet_run"
    run_dir.mkdir(parents=True)
    saved = {"epoch": 3, "model": model_t.state_dict(), "optimizer": {}}
    if mode == "gt_proposals":  # a checkpoint that carries its opt (an argparse Namespace)
        saved["opt"] = argparse.Namespace(**opt)
    else:  # PDVC's layout: opt in info.json next to model-best.pth
        (run_dir / "info.json").write_text(json.dumps({"best": {"opt": opt}}))
    torch.save(saved, run_dir / "model-best.pth")
    write_vocab(tmp_path / "data" / "vocab.json")  # found via opt dict_file
    out = tmp_path / "imported"
    import_pdvc.main([str(run_dir / "model-best.pth"), str(out)])

    rng = np.random.default_rng(0)
    feats = rng.normal(size=(1, STEPS, FEAT_DIM)).astype(np.float32)
    valid = np.ones((1, STEPS), bool)
    duration = np.asarray([11.5], np.float32)
    proposals = np.asarray([[[0.3, 0.4], [0.7, 0.2], [0.5, 0.5]]], np.float32)
    prop_valid = np.asarray([[True, True, False]])  # a padded GT slot
    gt = mode == "gt_proposals"
    want = model_t(torch.from_numpy(feats), torch.from_numpy(valid), torch.from_numpy(duration),
                   torch.from_numpy(proposals) if gt else None,
                   torch.from_numpy(prop_valid) if gt else None, max_len=MAX_LEN)
    want = {k: v.numpy() for k, v in want.items()}

    trained = build.load_trained_run(str(out))
    model = trained.build_model()
    params, _, _ = inference.restore_params(str(out))
    batch = {"feats": feats, "feat_valid": valid, "duration": duration, "gt_boxes": proposals,
             "gt_valid": prop_valid}
    got = model.apply({"params": params}, feats, valid, duration,
                      proposals if gt else None, prop_valid if gt else None)
    word_gates = inference._cached_word_gate_fn(model)(params)  # as evaluate_split runs it
    pred = inference._cached_predict_fn(model, mode, MAX_LEN)(params, batch, word_gates)

    tol = dict(atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(got["memory"], want["memory"], **tol)
    np.testing.assert_allclose(got["hs"], want["hs"], **tol)
    np.testing.assert_allclose(got["logits"], want["logits"], **tol)
    np.testing.assert_allclose(got["counts"], want["counts"], **tol)
    np.testing.assert_allclose(pred["counts"], want["counts"][-1], **tol)
    if refine or gt:
        np.testing.assert_allclose(pred["boxes"], want["boxes"][-1], **tol)
    if gt:
        np.testing.assert_allclose(got["boxes"], want["boxes"], **tol)
    elif not refine:
        # Fixed 1-d references: every layer's centre equals PDVC; PDVC's evaluation also adds
        # the reference logit to every length (the layer-0 quirk on every layer, README).
        assert trained.info["model"]["box_refine"] is False
        np.testing.assert_allclose(got["boxes"][..., 0], want["boxes"][..., 0], **tol)
        assert not np.allclose(got["boxes"][..., 1], want["boxes"][..., 1], atol=1e-3)
    else:
        # Later layers and layer 0's centre equal PDVC; layer 0's length deliberately does not
        # take the reference logit (PDVC's eval-only quirk, see the README).
        np.testing.assert_allclose(got["boxes"][1:], want["boxes"][1:], **tol)
        np.testing.assert_allclose(got["boxes"][0, ..., 0], want["boxes"][0, ..., 0], **tol)
        assert not np.allclose(got["boxes"][0, ..., 1], want["boxes"][0, ..., 1], atol=1e-3)
    tokens = _first_eos(pred["tokens"])
    assert tokens.any(), "greedy decoding produced only EOS: the check would be vacuous"
    np.testing.assert_array_equal(tokens, want["tokens"])


def test_light_head_round_trip():
    opt = dict(OPT, caption_decoder_type="light", att_hid_size=0)
    cfg, _ = import_pdvc.model_settings(opt)
    assert cfg["caption_head"] == "light"
    model = build.build_model(cfg, VOCAB + 1)
    params = jax.jit(lambda: model.init(
        {"params": jax.random.PRNGKey(2)}, jnp.zeros((1, STEPS, FEAT_DIM)),
        jnp.ones((1, STEPS), bool), jnp.ones((1,)), method=PDVC.init_all))()["params"]
    sd = import_pdvc.to_state_dict(jax.tree.map(np.asarray, params), cfg)
    assert not any("deformable_att" in k or "ctx2att" in k for k in sd)
    got, _, _, report = import_pdvc.convert_state_dict(sd, opt)
    assert report["unused"] == []
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, params), got)
