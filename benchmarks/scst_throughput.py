"""SCST throughput: jit-compiled `lax.scan` sampler vs a plain Python-loop sampler, one run.

Prints, for both samplers on the same model, sampled captions/s (K samples per event + the
greedy baseline, one batch) and SCST steps/s (sampling + host reward + jitted update of the
caption head).

Model (`--model`): "pdvc" (default) = the project's PDVC captioner at ActivityNet size (hidden
512, LSTM-DSA caption head, vocabulary 5,747 + 1, 100 feature steps) captioning
`--videos` x `--events` GT proposals; "light" = a standalone LSTM caption head of the same
width (state entirely in the carry). The host reward is a cheap stand-in (distinct-token
ratio) so that the figure measures sampling and updating, not CIDEr-D.

    .venv/bin/python benchmarks/scst_throughput.py --videos 4 --events 10 --samples 5
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from captioner_jax.scst.loss import advantages  # noqa: E402
from captioner_jax.scst.sampler import (  # noqa: E402
    carry_tiling_decoder,
    make_sampler,
    mask_through_eos,
)
from captioner_jax.scst.update import (  # noqa: E402
    init_state,
    make_optimizer,
    make_update_step,
)


class LightCaptionHead(nn.Module):
    """LSTM over [word embedding, event feature] -> vocab logits (PDVC light caption head)."""

    vocab_size: int
    hidden: int = 512

    def setup(self):
        self.embed = nn.Embed(self.vocab_size, self.hidden)
        self.cell = nn.OptimizedLSTMCell(self.hidden)
        self.logit = nn.Dense(self.vocab_size)

    def __call__(self, carry, prev_tokens):
        lstm_state, event = carry
        x = jnp.concatenate([self.embed(prev_tokens), event], axis=-1)
        lstm_state, h = self.cell(lstm_state, x)
        return (lstm_state, event), self.logit(h)


def build_light_model(vocab: int, hidden: int, events: int, seed: int = 0):
    head = LightCaptionHead(vocab, hidden)
    feats = jax.random.normal(jax.random.key(seed + 1), (events, hidden))
    zeros = jnp.zeros((events, hidden))
    tokens = jnp.zeros((events,), jnp.int32)
    params = head.init(jax.random.key(seed), ((zeros, zeros), feats), tokens)

    def build_decoder(p, inputs):
        f = inputs["event_feats"]
        z = jnp.zeros((f.shape[0], hidden), f.dtype)
        return carry_tiling_decoder(lambda c, t: head.apply(p, c, t), ((z, z), f))

    return params, {"event_feats": feats}, build_decoder, build_decoder


def build_pdvc_model(vocab: int, hidden: int, videos: int, events: int, steps: int = 100,
                     feat_dim: int = 512, seed: int = 0):
    """ActivityNet-size PDVC (docs/reference.md §4) over `videos` x `events` random GT proposals."""
    from captioner_jax.models.pdvc import PDVC
    from captioner_jax.scst.pdvc_decoder import pdvc_build_decoder

    model = PDVC(vocab_size=vocab, hidden_dim=hidden, rnn_size=hidden, word_dim=hidden,
                 att_hid=hidden)
    rng = np.random.default_rng(seed)
    centers = rng.uniform(0.1, 0.9, (videos, events))
    lengths = rng.uniform(0.05, 0.4, (videos, events))
    inputs = {
        "feats": jnp.asarray(rng.normal(size=(videos, steps, feat_dim)), jnp.float32),
        "feat_valid": jnp.ones((videos, steps), bool),
        "duration": jnp.asarray(rng.uniform(30, 200, videos), jnp.float32),
        "gt_boxes": jnp.asarray(np.stack([centers, lengths], -1), jnp.float32),
        "gt_valid": jnp.ones((videos, events), bool),
    }
    params = jax.jit(lambda k: model.init(
        {"params": k}, inputs["feats"], inputs["feat_valid"], inputs["duration"],
        method=PDVC.init_all)["params"])(jax.random.PRNGKey(seed))
    return (params, inputs, pdvc_build_decoder(model),
            pdvc_build_decoder(model, backbone_grad=False))


def python_loop_sampler(build_decoder, num_samples, max_len, temperature=1.0):
    """Token-by-token sampling driven from Python, as a PyTorch-style sampler does: the
    decoder context (transformer outputs) is computed once per mode by one jitted call, then
    one jitted step call per token (greedy and sampled decodes as separate loops), stopping
    early once every row has emitted EOS. `jax.closure_convert` turns the step function's
    captured context into explicit arguments so the per-token call does not recompute it."""
    compiled = {}

    def functions(params, inputs, k):
        if k not in compiled:
            holder = {}

            def prepare(params, inputs):
                step_fn, carry = build_decoder(params, inputs)(k)
                rows = jax.tree.leaves(carry)[0].shape[0]
                conv, consts = jax.closure_convert(step_fn, carry, jnp.zeros((rows,), jnp.int32))
                holder["step"] = conv
                return carry, consts

            prepare = jax.jit(prepare)
            prepare.lower(params, inputs)  # traces once: fills holder["step"]
            compiled[k] = (prepare, jax.jit(holder["step"]))
        return compiled[k]

    def run(params, inputs, key):
        out = {}
        for mode in ("greedy", "sample"):
            k = 1 if mode == "greedy" else num_samples
            prepare, step = functions(params, inputs, k)
            c, consts = prepare(params, inputs)
            rows = jax.tree.leaves(c)[0].shape[0]
            prev = jnp.zeros((rows,), jnp.int32)
            done = np.zeros((rows,), bool)
            toks = np.zeros((rows, max_len), np.int32)
            for t in range(max_len):
                c, logits = step(c, prev, *consts)
                if mode == "greedy":
                    tok = np.asarray(jnp.argmax(logits, -1))
                else:
                    key, sub = jax.random.split(key)
                    tok = np.asarray(jax.random.categorical(sub, logits / temperature))
                tok = np.where(done, 0, tok)
                toks[:, t] = tok
                done |= tok == 0
                prev = jnp.asarray(tok)
                if done.all():
                    break
            out[f"{mode}_tokens"] = toks
        return out

    return run


def main():
    from data_prep.infra.host_memory import keep_freed_memory

    keep_freed_memory()  # before JAX's backend starts: see data_prep/infra/host_memory.py
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=("pdvc", "light"), default="pdvc")
    ap.add_argument("--videos", type=int, default=4, help="videos per batch (pdvc)")
    ap.add_argument("--events", type=int, default=10, help="events per video (pdvc) or batch")
    ap.add_argument("--samples", type=int, default=5, help="K samples per event")
    ap.add_argument("--max-len", type=int, default=30)
    ap.add_argument("--vocab", type=int, default=5748)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--iters", type=int, default=5)
    args = ap.parse_args()
    print(f"devices: {jax.devices()}")
    if args.model == "pdvc":
        params, inputs, build_decoder, build_grad = build_pdvc_model(
            args.vocab, args.hidden, args.videos, args.events)
        n_events, trainable = args.videos * args.events, ("^caption_cell/",)
    else:
        params, inputs, build_decoder, build_grad = build_light_model(
            args.vocab, args.hidden, args.events)
        n_events, trainable = args.events, (".*",)
    k = args.samples
    rng = np.random.default_rng(0)
    opt = make_optimizer(params, learning_rate=5e-5, trainable=trainable)
    update = make_update_step(build_grad, opt, num_samples=k)

    def toy_reward(tokens):  # host reward stand-in: distinct tokens / length, no Java, no I/O
        return np.array([len(set(r[r > 0].tolist())) / max(1, (r > 0).sum()) for r in tokens])

    samplers = {
        "jit_scan": make_sampler(build_decoder, num_samples=k, max_len=args.max_len),
        "python_loop": python_loop_sampler(build_decoder, k, args.max_len),
    }
    n_captions = n_events * (k + 1)
    for name, sampler in samplers.items():
        state = init_state(jax.tree.map(jnp.copy, params), opt)
        out = sampler(state["params"], inputs, jax.random.key(0))  # compile / warm up
        jax.block_until_ready(out)
        t0 = time.perf_counter()
        for i in range(args.iters):
            out = sampler(state["params"], inputs, jax.random.key(i))
            jax.block_until_ready(out)
        dt_sample = (time.perf_counter() - t0) / args.iters
        times = []
        for i in range(args.iters + 1):
            t0 = time.perf_counter()
            out = sampler(state["params"], inputs, jax.random.key(100 + i))
            s_tok = np.asarray(out["sample_tokens"])
            g_tok = np.asarray(out["greedy_tokens"])
            r = toy_reward(s_tok).reshape(n_events, k) + 1e-3 * rng.standard_normal()
            adv = advantages(r, toy_reward(g_tok))
            state, m = update(state, inputs, jnp.asarray(s_tok),
                              mask_through_eos(jnp.asarray(s_tok)), jnp.asarray(adv.reshape(-1)))
            float(m["loss"])
            if i:  # the first step compiles the update
                times.append(time.perf_counter() - t0)
        dt_step = float(np.mean(times))
        print(f"{name:12s} sampling: {n_captions / dt_sample:10.1f} captions/s "
              f"({dt_sample * 1e3:8.1f} ms per batch of {n_events} events x (K={k} + greedy))"
              f" | SCST: {1.0 / dt_step:7.2f} steps/s")


if __name__ == "__main__":
    main()
