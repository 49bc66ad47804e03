"""R(2+1)D-34 encoder, project (JAX/XLA) vs the PyTorch original, side by side.

    python benchmarks/encoder_vs_torch.py                     # both shapes, train + extract
    python benchmarks/encoder_vs_torch.py --shapes 8x8x32 --repeats 3 \
        --json_out benchmarks/results/encoder_vs_torch.jsonl

Workloads, at each clip shape BxTxS (batch x frames x square crop, RGB):
  encoder_train    one training step: backbone (BatchNorm in train mode, running statistics
                   updated) + a linear 200-way action head + softmax cross-entropy, backward,
                   SGD (momentum 0.9, weight decay 0.005, PyTorch semantics) on every parameter.
  encoder_extract  the eval-mode backbone forward (feature extraction), pooled [B, 512].
The original is TSP's backbone, i.e. torchvision's `VideoResNet` R(2+1)D-34 (`Conv2Plus1D`:
Conv3d (1,3,3) -> BN -> ReLU -> Conv3d (3,1,1); BasicBlocks; TSP's mid-plane rule and BN
eps 1e-3), rebuilt below in plain `torch.nn` with torchvision's module names (torchvision is not
a dependency). Both sides get the same weights (the torch state dict converted by the project's
importer, `sa_tsp_jax.import_torch`), the same input, float32, and the same number of threads
(torch.set_num_threads = the cores this process may use, which XLA CPU uses by default).
Timing: `benchmarks/harness.alternate` (interleaved calls, median of --repeats after a warm-up
call), so load changes on a shared machine hit both alike. Prints clips/s, the ratio
(> 1: the project is faster) and the machine's measured matmul GFLOP/s; one BENCH_JSON line
per workload and shape. Without torch only the project's figures are printed.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import linen as nn  # noqa: E402

from benchmarks.harness import alternate, emit, machine_info, ratio  # noqa: E402
from sa_tsp_jax import import_torch  # noqa: E402
from sa_tsp_jax.models.r2plus1d import VARIANTS, make_backbone, midplanes  # noqa: E402

NUM_CLASSES = 200
LR, MOMENTUM, WEIGHT_DECAY = 1e-3, 0.9, 0.005


def parse_shape(text: str) -> tuple[int, int, int]:
    """'8x8x32' -> (batch, frames, size)."""
    try:
        b, t, s = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--shapes: expected BxTxS like 2x16x112, got {text!r}") from None
    return b, t, s


def torch_r2plus1d(torch, variant: str, num_classes: int):
    """TSP's R(2+1)D (torchvision VideoResNet layout and key names) in plain torch.nn."""
    cfg = VARIANTS[variant]
    stages, widths, stem = cfg["stage_sizes"], cfg["widths"], cfg["stem_width"]
    tnn = torch.nn

    def bn(c):
        return tnn.BatchNorm3d(c, eps=1e-3, momentum=0.9)

    def conv2plus1d(i, o, m, s):
        return tnn.Sequential(
            tnn.Conv3d(i, m, (1, 3, 3), (1, s, s), (0, 1, 1), bias=False), bn(m),
            tnn.ReLU(inplace=True),
            tnn.Conv3d(m, o, (3, 1, 1), (s, 1, 1), (1, 0, 0), bias=False))

    class Block(tnn.Module):
        def __init__(self, i, o, s):
            super().__init__()
            self.conv1 = tnn.Sequential(conv2plus1d(i, o, midplanes(i, o), s), bn(o),
                                        tnn.ReLU(inplace=True))
            self.conv2 = tnn.Sequential(conv2plus1d(o, o, midplanes(o, o), 1), bn(o))
            self.relu = tnn.ReLU(inplace=True)
            self.downsample = (tnn.Sequential(tnn.Conv3d(i, o, 1, s, bias=False), bn(o))
                               if s != 1 or i != o else None)

        def forward(self, x):
            short = x if self.downsample is None else self.downsample(x)
            return self.relu(self.conv2(self.conv1(x)) + short)

    class Features(tnn.Module):
        def __init__(self):
            super().__init__()
            self.stem = tnn.Sequential(
                tnn.Conv3d(3, stem, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False), bn(stem),
                tnn.ReLU(inplace=True),
                tnn.Conv3d(stem, widths[0], (3, 1, 1), 1, (1, 0, 0), bias=False),
                bn(widths[0]), tnn.ReLU(inplace=True))
            cin = widths[0]
            for li, (blocks, w) in enumerate(zip(stages, widths), start=1):
                layer = []
                for b in range(blocks):
                    layer.append(Block(cin, w, 2 if (li > 1 and b == 0) else 1))
                    cin = w
                setattr(self, f"layer{li}", tnn.Sequential(*layer))

        def forward(self, x):
            x = self.stem(x)
            for li in range(1, 5):
                x = getattr(self, f"layer{li}")(x)
            return x.mean(dim=(2, 3, 4))

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            self.features = Features()
            self.fc = tnn.Linear(widths[-1], num_classes)

        def forward(self, x):
            return self.fc(self.features(x))

    torch.manual_seed(0)
    net = Net()
    for m in net.modules():
        if isinstance(m, tnn.Conv3d):  # torchvision's init
            tnn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, tnn.BatchNorm3d):  # non-trivial statistics for the eval forward
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net


class Classifier(nn.Module):
    """The project's backbone + a linear action head (the same workload as `Net` above)."""

    backbone: nn.Module
    num_classes: int

    @nn.compact
    def __call__(self, clips, train: bool):
        return nn.Dense(self.num_classes, name="action_head")(self.backbone(clips, train))


def project_workloads(variant, train_batch_np, extract_np, sd, conv_impl="factorised"):
    """(train_step_fn, extract_fn, features) for the project's backbone with `conv_impl`."""
    backbone = make_backbone(variant, conv_impl=conv_impl)
    model = Classifier(backbone, NUM_CLASSES)
    clips, labels = train_batch_np
    if sd is not None:
        imported, _, unused = import_torch.convert_state_dict(sd)
        assert unused == [], unused
        # The importer maps torchvision's `fc` to `action_head` ((out, in) -> (in, out)).
        variables = jax.tree.map(jnp.asarray, {"params": imported["params"],
                                               "batch_stats": imported["batch_stats"]})
    else:
        variables = jax.jit(lambda k, x: model.init(k, x, train=False))(
            jax.random.key(0), jnp.asarray(clips[:1]))
    tx = optax.chain(optax.add_decayed_weights(WEIGHT_DECAY),
                     optax.sgd(LR, momentum=MOMENTUM))
    state = {"params": variables["params"], "batch_stats": variables["batch_stats"],
             "opt": tx.init(variables["params"])}

    def loss_fn(params, batch_stats, x, y):
        logits, upd = model.apply({"params": params, "batch_stats": batch_stats}, x,
                                  train=True, mutable=["batch_stats"])
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, upd["batch_stats"]

    @jax.jit
    def step(state, x, y):
        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state["params"], state["batch_stats"], x, y)
        updates, opt = tx.update(grads, state["opt"], state["params"])
        return {"params": optax.apply_updates(state["params"], updates), "batch_stats": stats,
                "opt": opt}, loss

    x, y = jnp.asarray(clips), jnp.asarray(labels)
    holder = {"state": state}

    def train_fn():
        holder["state"], loss = step(holder["state"], x, y)
        jax.block_until_ready(loss)

    bb_vars = {"params": variables["params"]["backbone"],
               "batch_stats": variables["batch_stats"]["backbone"]}
    fwd = jax.jit(lambda v, c: backbone.apply(v, c, train=False))
    xe = jnp.asarray(extract_np)

    def extract_fn():
        jax.block_until_ready(fwd(bb_vars, xe))

    return train_fn, extract_fn, fwd(bb_vars, xe)


def torch_workloads(torch, net, train_batch_np, extract_np):
    clips, labels = train_batch_np
    # NTHWC -> NCTHW, the layout torchvision's video models take.
    x = torch.from_numpy(np.ascontiguousarray(clips.transpose(0, 4, 1, 2, 3)))
    y = torch.from_numpy(labels.astype(np.int64))
    xe = torch.from_numpy(np.ascontiguousarray(extract_np.transpose(0, 4, 1, 2, 3)))
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    loss_fn = torch.nn.CrossEntropyLoss()

    def train_fn():
        net.train()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()

    def extract_fn():
        net.eval()
        with torch.no_grad():
            return net.features(xe)

    return train_fn, extract_fn


def main(argv=None) -> None:
    from data_prep.infra.host_memory import keep_freed_memory

    keep_freed_memory()  # before JAX's backend starts: see data_prep/infra/host_memory.py
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", default="r2plus1d_34", choices=sorted(VARIANTS))
    p.add_argument("--shapes", default="2x16x112,8x8x32",
                   help="comma-separated BxTxS clip shapes (batch x frames x square size)")
    p.add_argument("--workloads", default="train,extract")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per side (median)")
    p.add_argument("--no_torch", action="store_true", help="project figures only")
    p.add_argument("--also_conv3d", action="store_true",
                   help="also time the project with plain 3-D convolutions (conv_impl='conv3d', "
                        "the lowering before the factorised one), interleaved with the others")
    p.add_argument("--json_out", default="", help="append the BENCH_JSON lines to this .jsonl")
    args = p.parse_args(argv)

    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("torch is not importable: project figures only")
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if torch is not None:
        torch.set_num_threads(threads)
    info = machine_info()
    print(f"machine: {info}")
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for w in workloads:
        if w not in ("train", "extract"):
            raise SystemExit(f"--workloads: unknown {w!r} (train, extract)")

    for shape_text in args.shapes.split(","):
        b, t, s = parse_shape(shape_text.strip())
        rng = np.random.default_rng(0)
        clips = rng.normal(size=(b, t, s, s, 3)).astype(np.float32)
        labels = rng.integers(0, NUM_CLASSES, b).astype(np.int32)
        net, sd = None, None
        if torch is not None:
            net = torch_r2plus1d(torch, args.variant, NUM_CLASSES)
            sd = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
        p_train, p_extract, p_feat = project_workloads(args.variant, (clips, labels), clips, sd)
        cands = {"train": {"project": p_train}, "extract": {"project": p_extract}}
        if args.also_conv3d:
            r_train, r_extract, _ = project_workloads(args.variant, (clips, labels), clips, sd,
                                                      conv_impl="conv3d")
            cands["train"]["project_conv3d"] = r_train
            cands["extract"]["project_conv3d"] = r_extract
        if net is not None:
            o_train, o_extract = torch_workloads(torch, net, (clips, labels), clips)
            feat = o_extract().numpy()
            err = float(np.max(np.abs(feat - np.asarray(p_feat))))
            print(f"{shape_text}: extraction features, max |project - original| = {err:.2e}")
            cands["train"]["original"] = o_train
            cands["extract"]["original"] = o_extract
        for w in workloads:
            times = alternate(cands[w], repeats=args.repeats, warmup=1)
            proj = b / times["project"]
            orig = b / times["original"] if "original" in times else None
            r = ratio(times.get("original"), times["project"])
            c3 = b / times["project_conv3d"] if "project_conv3d" in times else None
            print(f"{args.variant} {w:>7} {b}x3x{t}x{s}x{s}: project {proj:.3f} clips/s"
                  + (f" (plain 3-D convs: {c3:.3f})" if c3 is not None else "")
                  + (f", original (torch) {orig:.3f} clips/s, ratio {r:.2f}x"
                     if orig is not None else ""), flush=True)
            record = {"bench": f"encoder_{w}", "variant": args.variant,
                      "shape": f"{b}x3x{t}x{s}x{s}", "batch": b,
                      "project_clips_per_s": round(proj, 4),
                      "original_clips_per_s": None if orig is None else round(orig, 4),
                      "ratio": None if r is None else round(r, 3), "threads": threads,
                      "repeats": args.repeats, "machine": info}
            if c3 is not None:
                record["project_conv3d_clips_per_s"] = round(c3, 4)
            emit(record, json_out=args.json_out or None)


if __name__ == "__main__":
    main()
