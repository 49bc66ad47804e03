"""The PDVC captioner side by side with PDVC in PyTorch: train step and greedy inference.

    python benchmarks/captioner_vs_pdvc.py [--batches 1,8] [--phases train,infer]
        [--repeats 5] [--words 13] [--json-out benchmarks/results/captioner_vs_pdvc.jsonl]

ActivityNet size: D=512, 100 feature steps (TSP 512-d features), 4 levels, 2 + 2 layers,
10 queries, LSTM-DSA caption head, vocabulary 5,747 words + 1; 4 events per video whose
captions have `--words` words (+ BOS and EOS). The original is PDVC's module tree in plain
PyTorch (tests/pdvc_torch_reference.py, the model of the import parity test); the project
runs the same weights (its state dict converted by `captioner_jax.import_pdvc`), on the same
inputs, the two timed interleaved (`benchmarks/harness.alternate`, medians).

train: one optimisation step as each trainer runs it at batch 1 (PDVC's LSTM-DSA head only
  takes batch 1): forward, Hungarian matching of every decoder layer (SciPy), PDVC's losses,
  backward, Adam. The original teacher-forces the matched queries up to the batch's longest
  caption (PDVC pads captions per batch); the project is `captioner_jax.train`'s pair of
  programs (the forward with its matching costs, then the update with the host assignment
  and the forward's outputs) on the pipeline's batch
  (30 event slots, captions padded to 30 tokens). Batch 8 is the project only (compared with
  PDVC's batch-1 videos/s).
infer: greedy captions of every query (up to 30 tokens; both loops stop once every caption
  has ended, as PDVC's sampler does) plus the localisation outputs; the project is
  `captioner_jax.inference`'s predict with the word-gate table that `predict_split` builds
  once per parameters (built before the timing; its time is `project_prepare_s`).

Favourable to the original (so the ratios are lower bounds against PDVC itself): its caption
sampler's value projection is computed once per call; PDVC recomputes it at every word.
Cores: by default torch and XLA each use all cores; `--threads N` pins the whole process to N
CPUs before JAX starts its backend (`benchmarks.harness.pin_to_cores`; XLA CPU sizes its
thread pools from them) and sets torch.set_num_threads(N), so both sides run on the same N
cores. Each record has the cores each side kept busy (`project_cores_used`,
`original_cores_used`: process CPU seconds per wall second over three extra calls). On a
machine shared with other jobs, torch's spinning worker threads lose far more than XLA's
when they share cores, which inflates the all-cores ratios; 1 is the fairest setting there.
Before 2026-12-01 `--threads 1` set XLA flags that do not stop XLA CPU's dot threads: the
project ran on 2 cores against torch's 1 (ratios of the records without `*_cores_used`).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.harness import alternate, cores_used, emit, machine_info, pin_to_cores, ratio  # noqa: E402
from captioner_jax import build, import_pdvc, train  # noqa: E402
from captioner_jax.inference import make_predict_fn, make_word_gate_fn  # noqa: E402
from captioner_jax.objective import MatcherCosts  # noqa: E402
from configs.captioner import base  # noqa: E402
from data_prep.infra import mesh as mesh_lib  # noqa: E402
from data_prep.infra.jax_setup import enable_compilation_cache  # noqa: E402

VOCAB = 5747  # words; the caption head has VOCAB + 1 outputs
FEAT_DIM, STEPS, EVENTS, SLOTS, CAPTION_LEN = 512, 100, 4, 30, 30
OPT = dict(
    hidden_dim=512, nheads=8, transformer_ff_dim=512, transformer_dropout_prob=0.1,
    enc_layers=2, dec_layers=2, num_feature_levels=4, enc_n_points=4, dec_n_points=4,
    num_queries=10, max_eseq_length=10, cap_nheads=1, cap_num_feature_levels=4,
    cap_dec_n_points=4, rnn_size=512, input_encoding_size=512, att_hid_size=512, drop_prob=0.5,
    caption_decoder_type="standard", num_layers=1, with_box_refine=1, share_caption_head=1,
    transformer_input_type="queries", feature_dim=FEAT_DIM, frame_embedding_num=STEPS,
)


# ----------------------------------------------------------------------------- inputs
def video_batch(rng, b: int, words: int) -> dict:
    """The caption pipeline's batch layout: SLOTS event slots, captions padded to 30."""
    boxes = np.zeros((b, SLOTS, 2), np.float32)
    boxes[:, :EVENTS, 0] = rng.uniform(0.2, 0.8, (b, EVENTS))
    boxes[:, :EVENTS, 1] = rng.uniform(0.05, 0.4, (b, EVENTS))
    valid = np.zeros((b, SLOTS), bool)
    valid[:, :EVENTS] = True
    caps = np.zeros((b, SLOTS, CAPTION_LEN), np.int32)
    caps[:, :EVENTS, 1:words + 1] = rng.integers(1, VOCAB + 1, (b, EVENTS, words))
    mask = np.zeros((b, SLOTS, CAPTION_LEN), bool)
    mask[:, :EVENTS, :words + 2] = True
    return {
        "feats": rng.normal(size=(b, STEPS, FEAT_DIM)).astype(np.float32),
        "feat_valid": np.ones((b, STEPS), bool),
        "duration": rng.uniform(30, 200, b).astype(np.float32),
        "gt_boxes": boxes, "gt_valid": valid, "captions": caps, "caption_mask": mask,
    }


# ----------------------------------------------------------------------------- original
def torch_model(torch):
    from tests import pdvc_torch_reference as ref

    torch.manual_seed(0)
    return ref.PDVC(OPT, FEAT_DIM, VOCAB)


def torch_train_step(torch, model, optimizer, batch: dict):
    """PDVC's training step at batch 1 on the reference module tree (see module docstring)."""
    import torch.nn.functional as F
    from scipy.optimize import linear_sum_assignment

    from tests import pdvc_torch_reference as ref

    feats = torch.from_numpy(batch["feats"][:1])
    valid = torch.from_numpy(batch["feat_valid"][:1])
    duration = torch.from_numpy(batch["duration"][:1])
    num_gt = int(batch["gt_valid"][0].sum())
    gt = torch.from_numpy(batch["gt_boxes"][0, :num_gt])
    length = int(batch["caption_mask"][0, :num_gt].sum(-1).max())  # PDVC pads per batch
    caps = torch.from_numpy(batch["captions"][0, :num_gt, :length]).long()
    cap_mask = torch.from_numpy(batch["caption_mask"][0, :num_gt, :length]).float()

    srcs, valids, poses = model.base_encoder(feats, valid, duration)
    tr = model.transformer
    shapes = [s.shape[1] for s in srcs]
    memory = torch.cat(srcs, 1)
    padding = ~torch.cat(valids, 1)
    pos = torch.cat([p + tr.level_embed[i] for i, p in enumerate(poses)], 1)
    ratios = torch.stack([v.float().mean(1) for v in valids], 1)
    centres = torch.cat([(torch.arange(t) + 0.5)[None] / (ratios[:, i, None] * t)
                         for i, t in enumerate(shapes)], 1)
    enc_ref = (centres[:, :, None] * ratios[:, None])[..., None]
    for layer in tr.encoder.layers:
        memory = layer(memory, pos, enc_ref, shapes, padding)
    qp, tgt = model.query_embed.weight.chunk(2, -1)
    qp, tgt = qp[None], tgt[None]
    ref_pts = tr.reference_points(qp).sigmoid()
    qvalid = torch.ones(qp.shape[:2], dtype=torch.bool)
    head = model.caption_head[-1]
    core = head.core
    lv = core.lv
    values = core.deformable_att.values(memory, padding)[:, :sum(shapes[:lv])]
    gt_xy = torch.stack([gt[:, 0] - gt[:, 1] / 2, gt[:, 0] + gt[:, 1] / 2], -1)
    total = 0.0
    for lid, layer in enumerate(tr.decoder.layers):
        cap_ref = (ref_pts[:, :, None] * ratios[:, None, :, None])[:, :, :lv]
        tgt = layer(tgt, qp, ref_pts[:, :, None] * ratios[:, None, :, None], memory, shapes,
                    padding, qvalid)
        logits = model.class_head[lid](tgt)[0, :, 0]
        counts = model.count_head[lid](tgt.max(1)[0])
        delta = model.bbox_head[lid](tgt)
        if ref_pts.shape[-1] == 1:
            box = torch.cat([delta[..., :1] + ref.inverse_sigmoid(ref_pts), delta[..., 1:]],
                            -1).sigmoid()
        else:
            box = (delta + ref.inverse_sigmoid(ref_pts)).sigmoid()
        # Matching (PDVC HungarianMatcher: focal class cost 2, GIoU cost 4).
        prob = logits.sigmoid()
        cls = 0.25 * (1 - prob) ** 2 * -(prob + 1e-8).log() - \
            0.75 * prob ** 2 * -(1 - prob + 1e-8).log()
        xy = torch.stack([box[0, :, 0] - box[0, :, 1] / 2, box[0, :, 0] + box[0, :, 1] / 2], -1)
        inter = (torch.min(xy[:, None, 1], gt_xy[None, :, 1])
                 - torch.max(xy[:, None, 0], gt_xy[None, :, 0])).clamp(min=0)
        union = (xy[:, 1] - xy[:, 0])[:, None] + (gt_xy[:, 1] - gt_xy[:, 0])[None] - inter
        hull = torch.max(xy[:, None, 1], gt_xy[None, :, 1]) - torch.min(xy[:, None, 0],
                                                                      gt_xy[None, :, 0])
        giou = inter / union - (hull - union) / hull
        cost = 2 * cls[:, None] - 4 * giou
        rows, cols = linear_sum_assignment(cost.detach().numpy())
        rows, cols = torch.as_tensor(rows), torch.as_tensor(cols)
        # Losses: focal, GIoU, counter (BCE), caption of the matched queries.
        target = torch.zeros_like(logits)
        target[rows] = 1.0
        focal = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        p_t = prob * target + (1 - prob) * (1 - target)
        focal = (focal * (1 - p_t) ** 2 * (0.25 * target + 0.75 * (1 - target))).sum() / num_gt
        count_t = F.one_hot(torch.tensor([min(num_gt, counts.shape[-1] - 1)]), counts.shape[-1])
        counter = F.binary_cross_entropy_with_logits(counts, count_t.float())
        loss_giou = (1 - giou[rows, cols]).sum() / num_gt
        events, refs = tgt[:, rows], cap_ref[:, rows]
        seq = caps[cols]
        h = c = torch.zeros(1, len(rows), core.rnn.hidden_size)
        outputs = []
        for i in range(seq.shape[1] - 1):  # PDVC's teacher-forced loop
            hq = h[0][None]
            off = core.deformable_att.sampling_offsets(torch.cat([hq, events], -1))
            loc = ref.locations(refs, off.view(1, len(rows), core.h, core.lv, core.p),
                                shapes[:lv], core.p)
            s = ref.sample_levels(values, shapes[:lv], loc, "border").flatten(3, 4)
            score = core.alpha_net(torch.tanh(core.ctx2att(s) + core.h2att(hq)[:, :, None,
                                                                               None]))
            att = (score.softmax(3) * s).sum(3).flatten(2)
            x = torch.cat([head.embed(seq[None, :, i]), att, events], -1)
            o, (h, c) = core.rnn(x, (h, c))
            outputs.append(F.log_softmax(head.logit(F.dropout(o[0], 0.5, True)), -1))
        logp = torch.stack(outputs, 1)  # [events, T-1, V]
        tok = logp.gather(2, seq[:, 1:, None])[..., 0]
        m = cap_mask[cols][:, 1:]
        caption = (-(tok * m).sum(1) / (m.sum(1) + 1e-6)).mean()
        total = total + 2 * focal + 4 * loss_giou + 0.5 * counter + 2 * caption
        ref_pts = box.detach()  # with_box_refine: the next layer's (centre, length)
    optimizer.zero_grad()
    total.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
    optimizer.step()
    return float(total.detach())


# ----------------------------------------------------------------------------- project
def flax_model():
    """(model, params): the benchmark's PDVC (`OPT`) initialised by Flax, seed 0 (without torch
    there is no state dict to import)."""
    cfg, _ = import_pdvc.model_settings(OPT)
    model = build.build_model(cfg, VOCAB + 1)
    params = jax.jit(lambda k: model.init(
        {"params": k}, jnp.zeros((1, STEPS, FEAT_DIM)), jnp.ones((1, STEPS), bool),
        jnp.ones((1,)), method=type(model).init_all)["params"])(jax.random.key(0))
    return model, params


def project_train(model, params, b: int, mode: str = "queries", forward_in_step: bool = False):
    """captioner_jax.train's programs for a batch of `b` -> step(batch) -> loss (blocks).

    forward_in_step: the trainer's form before 2026-12-02, for comparison
    (`benchmarks/captioner_forward_once.py`): a program of the forward computes the matching
    costs only, and the update runs the forward again (instead of finishing the step on the
    first forward's outputs and pullback)."""
    cfg = base.get_config()
    tx, schedule = build.build_optimizer(cfg.optim, 1000, 30)
    mesh = mesh_lib.make_mesh()
    rep, sharded = mesh_lib.replicated(mesh), mesh_lib.batch_sharding(mesh)
    costs = MatcherCosts(**dict(cfg.matcher))
    weights = {k: float(v) for k, v in dict(cfg.loss_weights).items()}
    update = train.make_train_step(model, tx, schedule, mode=mode, costs=costs,
                                   weights=weights, state_sharding=rep, metric_sharding=rep)
    training_forward = (train.make_training_forward(model, costs, sharded)
                        if mode == "queries" else None)
    if training_forward is not None and forward_in_step:  # costs only (residuals: dead code)
        costs_only = jax.jit(lambda *a: (training_forward(*a)[0], None))
    else:
        costs_only = None
    state = {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}
    key = jax.random.key(0)
    # Placed as the step returns it (replicated over the mesh): a first call on uncommitted
    # arrays would compile the step a second time at the second call.
    holder = {"state": jax.device_put(jax.tree.map(jnp.copy, state), rep)}

    def step(batch):
        state = holder["state"]
        assign = fwd = None
        if training_forward is not None:  # mode "queries": Hungarian matching on the host
            cost, fwd = (costs_only or training_forward)(state["params"], batch, key,
                                                         state["step"])
            assign = jnp.asarray(train.host_assignment(np.asarray(cost), batch["gt_valid"]))
        holder["state"], metrics = update(state, batch, key, assign, fwd)
        return jax.block_until_ready(metrics["loss"])

    return step


def main():
    from data_prep.infra.host_memory import keep_freed_memory

    keep_freed_memory()  # before JAX's backend starts: see data_prep/infra/host_memory.py
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--phases", default="train,infer")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--words", type=int, default=13, help="words per caption")
    parser.add_argument("--threads", type=int, default=0,
                        help="0: torch and XLA use all cores; N: the process is pinned to N "
                             "CPUs and torch uses N threads (1 is fairer on a machine shared "
                             "with other jobs)")
    parser.add_argument("--json-out", default="", help="append the BENCH_JSON lines here")
    args = parser.parse_args()
    if args.threads < 0:
        parser.error("--threads is 0 (all cores) or a number of CPUs")
    if args.threads:  # before the first JAX computation: XLA sizes its pools from these CPUs
        print("pinned to CPUs", pin_to_cores(args.threads))
    enable_compilation_cache()
    try:
        import torch
    except ImportError:
        torch = None
        print("torch is not importable: the project side only")
    if torch is not None:
        torch.set_num_threads(args.threads or os.cpu_count())
    info = machine_info()
    print("machine:", info)
    rng = np.random.default_rng(0)
    phases = args.phases.split(",")
    batches = [int(x) for x in args.batches.split(",")]

    model_t = torch_model(torch) if torch is not None else None
    if model_t is not None:
        state_dict = {k: v.detach().numpy() for k, v in model_t.state_dict().items()}
        params, cfg, _, _ = import_pdvc.convert_state_dict(state_dict, OPT)
        model = build.build_model(cfg, VOCAB + 1)
    else:  # the same model, initialised by Flax
        model, params = flax_model()
    params = jax.tree.map(jnp.asarray, params)
    pdvc_videos_s = {}
    for phase in phases:
        for b in batches:
            batch = video_batch(rng, b, args.words)
            jbatch = jax.tree.map(jnp.asarray, batch)
            if phase == "train":
                step = project_train(model, params, b)
                t0 = time.perf_counter()
                step(jbatch)
                first = time.perf_counter() - t0
                project = lambda step=step, jbatch=jbatch: step(jbatch)  # noqa: E731
                original = None
                if torch is not None and b == 1:
                    model_t.train()
                    opt_t = torch.optim.Adam(model_t.parameters(), lr=1e-5, weight_decay=1e-4)
                    original = lambda: torch_train_step(torch, model_t, opt_t, batch)  # noqa
            else:
                predict = make_predict_fn(model, "queries", CAPTION_LEN)
                word_gate_fn = make_word_gate_fn(model)
                jax.block_until_ready(word_gate_fn(params))  # compiled
                t0 = time.perf_counter()
                word_gates = jax.block_until_ready(word_gate_fn(params))
                prepare = time.perf_counter() - t0
                t0 = time.perf_counter()
                jax.block_until_ready(predict(params, jbatch, word_gates))
                first = time.perf_counter() - t0
                project = lambda predict=predict, jbatch=jbatch, w=word_gates: (  # noqa: E731
                    jax.block_until_ready(predict(params, jbatch, w)))
                original = None
                if torch is not None and b == 1:
                    model_t.eval()
                    args_t = [torch.from_numpy(batch[k]) for k in
                              ("feats", "feat_valid", "duration")]

                    def original(args_t=args_t):
                        with torch.no_grad():
                            return model_t(*args_t, max_len=CAPTION_LEN)
            cands = {"project": project}
            if original is not None:
                cands["original"] = original
            times = alternate(cands, repeats=args.repeats, warmup=1)
            used = {name: cores_used(fn) for name, fn in cands.items()}
            if original is not None:
                pdvc_videos_s[phase] = 1.0 / times["original"]
            videos_s = b / times["project"]
            orig_s = times.get("original")
            vs_ratio = (videos_s / pdvc_videos_s[phase]) if phase in pdvc_videos_s else None
            print(f"{phase:5s} batch {b}: project {times['project']:.3f} s ({videos_s:.2f} "
                  f"videos/s, first call {first:.1f} s) | PDVC torch "
                  + (f"{orig_s:.3f} s ({1 / orig_s:.2f} videos/s)" if orig_s else "-")
                  + (f" | videos/s ratio {vs_ratio:.2f}x" if vs_ratio else "")
                  + " | cores used " + ", ".join(f"{k} {v:.2f}" for k, v in used.items()),
                  flush=True)
            emit({
                "bench": f"captioner_{phase}", "batch": b, "caption_len": CAPTION_LEN,
                "caption_words": args.words, "events": EVENTS, "queries": OPT["num_queries"],
                "project_s": round(times["project"], 4), "project_videos_s": round(videos_s, 3),
                "project_first_call_s": round(first, 1),
                "project_cores_used": round(used["project"], 2),
                "original_cores_used": round(used["original"], 2) if "original" in used
                else None,
                "project_prepare_s": round(prepare, 4) if phase == "infer" else None,
                "original": "pdvc_torch_reference" if torch is not None else None,
                "original_s": round(orig_s, 4) if orig_s else None,
                "original_videos_s": round(pdvc_videos_s[phase], 3)
                if phase in pdvc_videos_s else None,
                "ratio": round(ratio(orig_s, times["project"]), 2) if orig_s else None,
                "threads": args.threads or os.cpu_count(),
                "videos_s_ratio": round(vs_ratio, 2) if vs_ratio else None,
                "machine": info,
            }, args.json_out or None)


if __name__ == "__main__":
    main()
