"""SCST throughput: jit-compiled `lax.scan` sampler vs a plain Python-loop sampler, one run.

Prints sampled captions/s (K samples per event + the greedy baseline) and SCST steps/s (sample
+ host CIDEr-D-free toy reward + jitted update) for both samplers on the same caption head.

The model is the captioner's caption head when `captioner_jax.decoding.caption_decoder` is
available (ActivityNet size: hidden 512, vocab 5,747 incl. UNK), else an LSTM caption head
of the same size defined here (PDVC's "light" head: LSTM over [word embedding, event feature]).

    .venv/bin/python benchmarks/scst_throughput.py --events 40 --samples 5 --max-len 30
"""
from __future__ import annotations

import argparse
import functools
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from captioner_jax.scst.loss import advantages
from captioner_jax.scst.sampler import (
    carry_tiling_decoder,
    make_sampler,
    mask_through_eos,
)
from captioner_jax.scst.update import init_state, make_optimizer, make_update_step


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


def build_model(vocab: int, hidden: int, events: int, seed: int = 0):
    head = LightCaptionHead(vocab, hidden)
    feats = jax.random.normal(jax.random.key(seed + 1), (events, hidden))
    zeros = jnp.zeros((events, hidden))
    tokens = jnp.zeros((events,), jnp.int32)
    params = head.init(jax.random.key(seed), ((zeros, zeros), feats), tokens)

    def build_decoder(p, inputs):
        f = inputs["event_feats"]
        z = jnp.zeros((f.shape[0], hidden), f.dtype)
        return carry_tiling_decoder(lambda c, t: head.apply(p, c, t), ((z, z), f))

    return params, {"event_feats": feats}, build_decoder


def python_loop_sampler(build_decoder, num_samples, max_len, temperature=1.0):
    """Token-by-token sampling driven from Python: one jitted step call per token (and the
    greedy decode as its own loop), stopping early once every row has emitted EOS."""

    @functools.partial(jax.jit, static_argnums=2)
    def prepare(params, inputs, k):
        return build_decoder(params, inputs)(k)[1]

    @functools.partial(jax.jit, static_argnums=4)
    def step(params, inputs, carry, prev, k):
        step_fn, _ = build_decoder(params, inputs)(k)
        return step_fn(carry, prev)

    def run(params, inputs, key):
        out = {}
        for mode in ("greedy", "sample"):
            k = 1 if mode == "greedy" else num_samples
            c = prepare(params, inputs, k)
            rows = jax.tree.leaves(c)[0].shape[0]
            prev = jnp.zeros((rows,), jnp.int32)
            done = np.zeros((rows,), bool)
            toks = np.zeros((rows, max_len), np.int32)
            for t in range(max_len):
                c, logits = step(params, inputs, c, prev, k)
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
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=40, help="events per batch")
    ap.add_argument("--samples", type=int, default=5, help="K samples per event")
    ap.add_argument("--max-len", type=int, default=30)
    ap.add_argument("--vocab", type=int, default=5748)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--iters", type=int, default=5)
    args = ap.parse_args()
    print(f"devices: {jax.devices()}")
    params, inputs, build_decoder = build_model(args.vocab, args.hidden, args.events)
    k = args.samples
    rng = np.random.default_rng(0)
    opt = make_optimizer(params, learning_rate=5e-5, trainable=(".*",))
    update = make_update_step(build_decoder, opt, num_samples=k)

    def toy_reward(tokens):  # host reward stand-in: distinct tokens / length, no Java, no I/O
        return np.array([len(set(r[r > 0].tolist())) / max(1, (r > 0).sum()) for r in tokens])

    samplers = {
        "jit_scan": make_sampler(build_decoder, num_samples=k, max_len=args.max_len),
        "python_loop": python_loop_sampler(build_decoder, k, args.max_len),
    }
    n_captions = args.events * (k + 1)
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
            r = toy_reward(s_tok).reshape(args.events, k) + 1e-3 * rng.standard_normal()
            adv = advantages(r, toy_reward(g_tok))
            state, m = update(state, inputs, jnp.asarray(s_tok),
                              mask_through_eos(jnp.asarray(s_tok)), jnp.asarray(adv.reshape(-1)))
            float(m["loss"])
            if i:  # the first step compiles the update
                times.append(time.perf_counter() - t0)
        dt_step = float(np.mean(times))
        print(f"{name:12s} sampling: {n_captions / dt_sample:10.1f} captions/s "
              f"({dt_sample * 1e3:8.1f} ms per batch of {args.events} events x (K={k} + greedy))"
              f" | SCST: {1.0 / dt_step:7.2f} steps/s")


if __name__ == "__main__":
    main()
