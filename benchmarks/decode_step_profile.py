"""Where a greedy caption step of the captioner goes, and whether memory traffic bounds it.

    python benchmarks/decode_step_profile.py [--threads 1] [--max-len 30] [--repeats 15]
        [--calls 5] [--model activitynet|runlocal]
        [--json-out benchmarks/results/decode_step_profile.jsonl]

`captioner_jax.inference.make_predict_fn` at batch 1 (the word-gate table built once, as
`predict_split` does), on the ActivityNet-size PDVC of `benchmarks/captioner_vs_pdvc.py`
(D=512, 10 queries, vocabulary 5,748, initialised by Flax with seed 0; `--model runlocal`:
the tests' tiny config). In one process, pinned to `--threads` CPUs:

1. the call with a `--max-len` and a 1-token limit, interleaved, medians: per greedy step =
   the difference / (the steps the longer call ran - 1) (the loop stops once every caption
   has ended, so the steps are counted from its tokens);
2. a `jax.profiler` trace of `--calls` calls: the time of every XLA kernel, and the bytes it
   reads and writes (its operands and result, from the compiled HLO); the kernels that run
   once per greedy step give the step's kernel time, bytes and their rate (GB/s);
3. the same machine's rates in the same run, to compare that with: a loop of the same
   shape as the greedy one (the word projection and a [R, 4R] product per step) with the
   projection written three ways (`PROJECTION_FORMS`); the projection in a loop with one
   more product of 0, 4, 8, 16 MB of weight against the two timed alone (`working_set_ms`:
   what the loop loses once its weights outgrow the cache); the word projection
   ([queries, R] x [R, V], the step's largest product) timed alone, its weight staying in
   cache between calls; and a plain read (a sum) of one buffer of the step's bytes (fits the
   last-level cache on most CPUs) and of one of `--stream-mb` MB (does not: memory).

A step whose kernels run at about the large buffer's rate is bounded by memory traffic, not
arithmetic. Prints the table and one BENCH_JSON line (with the XLA_FLAGS it ran under: run
it again with flags that route products to other libraries, e.g.
`XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=` for Eigen, to compare them).
The projection's in-loop figures are the step's largest reader's (at ActivityNet size the
projection: its weight is most of the step's bytes).
"""
from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2,
               "s32": 4, "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8,
               "c128": 16}
CONTROL_FLOW = {"while", "conditional", "call"}  # their time includes their kernels'
_ARRAY = re.compile(r"\b(" + "|".join(DTYPE_BYTES) + r")\[([\d,]*)\]")
_INSTRUCTION = re.compile(
    r"^\s*(ROOT\s+)?%?([\w.\-]+) = (.*?) ([a-z][a-z0-9\-]*)\((.*)$")
_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+) \(.*\) -> .*\{\s*$")
# Operand 0 of these is read (gather, dynamic-slice) or written in place (dynamic-update-
# slice) only where the result says, not whole: counting the whole buffer would make a row
# lookup in a [V, 4R] table read the table.
_SLICING = {"gather", "dynamic-slice"}
_PASS_THROUGH = {"bitcast", "reshape"}


def shape_bytes(type_text: str) -> int:
    """Bytes of an HLO type: 'f32[10,512]{1,0}' -> 20480; tuples summed; s32[] -> 4."""
    total = 0
    for dtype, dims in _ARRAY.findall(type_text):
        n = 1
        for d in filter(None, dims.split(",")):
            n *= int(d)
        total += n * DTYPE_BYTES[dtype]
    return total


def _operand_text(rest: str) -> str:
    """The text inside an instruction's operand parentheses (rest starts after '(')."""
    depth = 1
    for i, ch in enumerate(rest):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0:
            return rest[:i]
    return rest


def hlo_instructions(hlo_text: str) -> dict[str, dict]:
    """name -> {"opcode", "bytes_out", "operands" (names), "op_name", "computation",
    "root" (bool), "calls" (a fusion's computation or None), "parameter" (index or None)}
    of every instruction of a compiled HLO module's text (names are unique in a module)."""
    out, computation = {}, None
    for line in hlo_text.splitlines():
        c = _COMPUTATION.match(line)
        if c:
            computation = c.group(1)
            continue
        m = _INSTRUCTION.match(line)
        if not m:
            continue
        root, name, type_text, opcode, rest = m.groups()
        operands = _operand_text(rest)
        op_name = re.search(r'op_name="([^"]*)"', rest)
        calls = re.search(r"calls=%?([\w.\-]+)", rest)
        out[name] = {
            "opcode": opcode,
            "bytes_out": shape_bytes(type_text),
            "operands": re.findall(r"%([\w.\-]+)", operands),
            "op_name": op_name.group(1) if op_name else "",
            "computation": computation,
            "root": bool(root),
            "calls": calls.group(1) if calls and opcode == "fusion" else None,
            "parameter": int(operands) if opcode == "parameter" and operands.isdigit()
            else None,
        }
    return out


def _read_bytes(instructions: dict, users: dict, value: str, whole: int) -> int:
    """Bytes of `value` (whole bytes) its users in a fused computation read: a gather or
    dynamic-slice of it reads its result's bytes, a dynamic-update-slice into it none (in
    place); bitcasts and reshapes pass through; any other use reads it whole."""
    total = 0
    for user in users.get(value, ()):
        ins = instructions[user]
        first = ins["operands"][:1] == [value]
        if ins["opcode"] in _SLICING and first:
            total += ins["bytes_out"]
        elif ins["opcode"] == "dynamic-update-slice" and first:
            continue
        elif ins["opcode"] in _PASS_THROUGH:
            total += _read_bytes(instructions, users, user, whole)
        else:
            return whole
    return min(total, whole)


def _written_bytes(instructions: dict, name: str) -> int:
    """Bytes an instruction writes: an in-place dynamic-update-slice writes its update."""
    ins = instructions[name]
    if ins["opcode"] == "dynamic-update-slice" and len(ins["operands"]) > 1:
        return instructions.get(ins["operands"][1], {"bytes_out": ins["bytes_out"]})["bytes_out"]
    return ins["bytes_out"]


def kernel_bytes(instructions: dict[str, dict], name: str) -> int:
    """Bytes a kernel reads from its operands and writes to its result. A fusion reads of
    each operand what its computation uses of it (see `_read_bytes`) and writes its root's
    bytes (an update's for an in-place dynamic-update-slice); the same rules for a gather,
    dynamic-slice or dynamic-update-slice kernel; any other kernel reads its operands whole."""
    ins = instructions[name]
    whole = {o: instructions[o]["bytes_out"] for o in ins["operands"] if o in instructions}
    if ins["calls"] is not None:
        members = {n: i for n, i in instructions.items() if i["computation"] == ins["calls"]}
        users: dict[str, list[str]] = collections.defaultdict(list)
        for n, i in members.items():
            for o in i["operands"]:
                users[o].append(n)
        params = {i["parameter"]: n for n, i in members.items() if i["parameter"] is not None}
        read = sum(_read_bytes(instructions, users, params[k], whole.get(o, 0))
                   if k in params else whole.get(o, 0) for k, o in enumerate(ins["operands"]))
        roots = [n for n, i in members.items() if i["root"]]
        return read + (_written_bytes(instructions, roots[0]) if roots else ins["bytes_out"])
    first = ins["operands"][0] if ins["operands"] else None
    if ins["opcode"] in _SLICING:
        rest = sum(b for o, b in whole.items() if o != first)
        return 2 * ins["bytes_out"] + rest
    if ins["opcode"] == "dynamic-update-slice":
        rest = sum(b for o, b in whole.items() if o != first)
        return rest + _written_bytes(instructions, name)
    return sum(whole.values()) + ins["bytes_out"]


def trace_kernel_times(trace_dir: str, names) -> dict[str, tuple[float, int]]:
    """name -> (total seconds, executions) of the trace events (complete events, 'ph' X)
    whose name is in `names`, from the `jax.profiler` trace under `trace_dir`."""
    files = glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True)
    if not files:
        raise FileNotFoundError(f"no *.trace.json.gz under {trace_dir}: the trace was not written")
    with gzip.open(sorted(files)[-1]) as f:
        trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    total, count = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("ph") == "X" and e.get("name") in names:
            total[e["name"]] += e.get("dur", 0) * 1e-6
            count[e["name"]] += 1
    return {n: (total[n], count[n]) for n in total}


def loop_steps(tokens, max_len: int) -> int:
    """Greedy steps a call ran: every caption's words and its EOS (token 0, zeros after it),
    the longest one, at most max_len. tokens int [..., max_len]."""
    import numpy as np

    words = (np.asarray(tokens).reshape(-1, max_len) != 0).sum(-1)
    return int(min(words.max() + 1, max_len))


def step_kernels(kernels: dict[str, tuple[float, int]], instructions: dict[str, dict],
                 calls: int, steps: int) -> list[dict]:
    """The kernels that ran once per greedy step (executions == calls * steps; control flow
    left out), slowest first: name, op_name, ms per step, MB per step, GB/s."""
    rows = []
    for name, (seconds, n) in kernels.items():
        ins = instructions.get(name)
        if ins is None or ins["opcode"] in CONTROL_FLOW or n != calls * steps:
            continue
        moved = kernel_bytes(instructions, name)
        rows.append({"kernel": name, "op_name": ins["op_name"],
                     "ms_per_step": 1e3 * seconds / n, "mb_per_step": moved / 1e6,
                     "gb_s": moved * n / seconds / 1e9 if seconds else None})
    return sorted(rows, key=lambda r: -r["ms_per_step"])


def median_seconds(fn, repeats: int) -> float:
    """Median seconds of `repeats` calls of fn after one untimed call."""
    from benchmarks.harness import alternate

    return alternate({"fn": fn}, repeats=repeats, warmup=1)["fn"]


def read_rate_gb_s(mbytes: float, repeats: int) -> float:
    """GB/s of one jitted sum over a float32 buffer of `mbytes` MB (XLA reads it once)."""
    import jax
    import jax.numpy as jnp

    x = jnp.ones((max(1, int(mbytes * 1e6 / 4)),), jnp.float32)
    total = jax.jit(jnp.sum)
    seconds = median_seconds(lambda: jax.block_until_ready(total(x)), repeats)
    return x.nbytes / seconds / 1e9


def projection_alone_ms(rows: int, kernel, bias, repeats: int) -> float:
    """The word projection h [rows, R] @ kernel [R, V] + bias alone, median ms."""
    import jax
    import jax.numpy as jnp

    h = jnp.ones((rows, kernel.shape[0]), jnp.float32)
    fn = jax.jit(lambda h, k, b: h @ k + b)
    return 1e3 * median_seconds(lambda: jax.block_until_ready(fn(h, kernel, bias)), repeats)


PROJECTION_FORMS = {
    # h [N, R] x kernel [R, V]: the product (XLA picks the library: YNNPACK by default on
    # x86), the same sum written as a multiply-reduce, and the vocabulary in four blocks.
    "product": lambda h, k: h @ k,
    "reduction": lambda h, k: (h[:, :, None] * k[None]).sum(1),
    "vocabulary_blocks": lambda h, k: vocabulary_blocks(h, k, 4),
}


def vocabulary_blocks(h, kernel, blocks: int):
    import jax.numpy as jnp

    edges = [kernel.shape[1] * i // blocks for i in range(blocks + 1)]
    return jnp.concatenate([h @ kernel[:, a:b] for a, b in zip(edges, edges[1:])], axis=1)


def loop_form_ms(rows: int, kernel, gate_width: int, steps: int, repeats: int) -> dict:
    """ms per step of a `steps`-step loop shaped like the greedy one, for each of
    PROJECTION_FORMS: a [rows, R] state through a [R, gate_width] product and the word
    projection, the argmax's row of a [V, R] table fed back (so nothing is loop-invariant)."""
    import jax
    import jax.numpy as jnp

    r, v = kernel.shape
    key = jax.random.key(1)
    gate = jax.random.normal(key, (r, gate_width), jnp.float32) * 0.01
    table = jax.random.normal(key, (v, r), jnp.float32) * 0.01
    h0 = jnp.ones((rows, r), jnp.float32)
    out = {}
    for name, project in PROJECTION_FORMS.items():
        def loop(h, kernel, gate, table, project=project):
            def body(h, _):
                logits = project(h, kernel)
                g = h @ gate
                h = jnp.tanh(h + 1e-3 * g[:, :r] + table[jnp.argmax(logits, -1)])
                return h, logits.max()
            return jax.lax.scan(body, h, None, length=steps)[1]

        fn = jax.jit(loop)
        seconds = median_seconds(
            lambda fn=fn: jax.block_until_ready(fn(h0, kernel, gate, table)), repeats)
        out[name] = round(1e3 * seconds / steps, 3)
    return out


WORKING_SET_EXTRA_MB = (0, 4, 8, 16)


def working_set_ms(rows: int, kernel, extra_mb, steps: int, repeats: int) -> list[dict]:
    """Per step of a `steps`-step loop of the word projection plus one more product with a
    [R, n] weight of `extra_mb` MB (0: none), against the two products timed alone (each
    weight staying in cache between calls): where the loop's weights together outgrow the
    cache, the loop costs more than its parts. -> [{"extra_mb", "loop_ms", "parts_ms"}]."""
    import jax
    import jax.numpy as jnp

    r = kernel.shape[0]
    h0 = jnp.ones((rows, r), jnp.float32)
    product = jax.jit(lambda h, w: h @ w)
    projection_ms = 1e3 * median_seconds(
        lambda: jax.block_until_ready(product(h0, kernel)), repeats)
    out = []
    for mb in extra_mb:
        width = max(r, int(mb * 1e6 / 4 / r))
        extra = jax.random.normal(jax.random.key(2), (r, width), jnp.float32) * 0.01

        def loop(h, kernel, extra, use_extra=bool(mb)):
            def body(h, _):
                logits = h @ kernel
                g = (h @ extra)[:, :r] if use_extra else 0.0
                return jnp.tanh(h + 1e-3 * logits[:, :r] + 1e-3 * g), logits.max()
            return jax.lax.scan(body, h, None, length=steps)[1]

        fn = jax.jit(loop)
        loop_s = median_seconds(
            lambda fn=fn, extra=extra: jax.block_until_ready(fn(h0, kernel, extra)), repeats)
        extra_ms = 1e3 * median_seconds(
            lambda extra=extra: jax.block_until_ready(product(h0, extra)), repeats) if mb else 0.0
        out.append({"extra_mb": mb, "loop_ms": round(1e3 * loop_s / steps, 3),
                    "parts_ms": round(projection_ms + extra_ms, 3)})
    return out


def build(which: str):
    """(model, params, batch of one video) for `--model`."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    if which == "activitynet":
        from benchmarks import captioner_vs_pdvc as cv

        model, params = cv.flax_model()
        batch = cv.video_batch(np.random.default_rng(0), 1, 13)
    else:
        from benchmarks.captioner_throughput import random_batch
        from captioner_jax import build as build_lib
        from configs.captioner import synthetic

        words = 74
        c = synthetic.get_config("root=unused,features=unused,dim=64,runlocal")
        model = build_lib.build_model(c.model, words + 1)
        batch = random_batch(np.random.default_rng(0), 1, t=32, c=64, vocab=words)
        params = jax.jit(lambda k: model.init(
            {"params": k}, batch["feats"], batch["feat_valid"], batch["duration"],
            method=type(model).init_all)["params"])(jax.random.key(0))
    return model, params, jax.tree.map(jnp.asarray, batch)


def profile(model, params, batch, *, max_len: int, repeats: int, calls: int,
            stream_mb: float, trace_dir: str) -> dict:
    """The measurements of the module docstring -> one record (seconds as ms, rates GB/s)."""
    import jax

    from benchmarks.harness import alternate
    from captioner_jax.inference import make_predict_fn, make_word_gate_fn

    word_gates = jax.block_until_ready(make_word_gate_fn(model)(params))
    long_fn, short_fn = make_predict_fn(model, "queries", max_len), make_predict_fn(
        model, "queries", 1)
    out = jax.block_until_ready(long_fn(params, batch, word_gates))
    jax.block_until_ready(short_fn(params, batch, word_gates))
    steps = loop_steps(out["tokens"], max_len)
    times = alternate({name: lambda fn=fn: jax.block_until_ready(fn(params, batch, word_gates))
                       for name, fn in (("long", long_fn), ("short", short_fn))},
                      repeats=repeats, warmup=0)  # both called once above
    long_s, short_s = times["long"], times["short"]
    step_ms = 1e3 * (long_s - short_s) / max(steps - 1, 1)

    instructions = hlo_instructions(
        long_fn.lower(params, batch, word_gates).compile().as_text())
    with jax.profiler.trace(trace_dir):
        for _ in range(calls):
            jax.block_until_ready(long_fn(params, batch, word_gates))
    kernels = trace_kernel_times(trace_dir, instructions)
    if not kernels:
        raise RuntimeError(f"the trace in {trace_dir} names none of the program's kernels")
    per_step = step_kernels(kernels, instructions, calls, steps)
    kernel_ms = sum(r["ms_per_step"] for r in per_step)
    step_mb = sum(r["mb_per_step"] for r in per_step)

    logit = params["caption_cell"]["logit"]
    rows = out["tokens"].shape[0] * out["tokens"].shape[1]
    proj_ms = projection_alone_ms(rows, logit["kernel"], logit["bias"], repeats)
    proj_mb = (logit["kernel"].nbytes + logit["bias"].nbytes) / 1e6
    proj_gflop = 2 * rows * logit["kernel"].shape[0] * logit["kernel"].shape[1] / 1e9
    # The projection's kernel in the loop: the step's largest reader (its weight dominates).
    largest = max(per_step, key=lambda r: r["mb_per_step"]) if per_step else None
    in_loop_ms = largest["ms_per_step"] if largest and largest["mb_per_step"] >= proj_mb else None
    return {
        "max_len": max_len, "steps_run": steps, "queries": rows,
        "call_ms": round(1e3 * long_s, 2), "one_token_call_ms": round(1e3 * short_s, 2),
        "step_ms": round(step_ms, 3),
        "step_kernel_ms": round(kernel_ms, 3), "step_kernels": len(per_step),
        "step_mb": round(step_mb, 2),
        "step_gb_s": round(step_mb / kernel_ms, 2) if kernel_ms else None,
        "top_kernels": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
                        for r in per_step[:8]],
        "projection_mb": round(proj_mb, 2), "projection_alone_ms": round(proj_ms, 3),
        "projection_alone_gb_s": round(proj_mb / proj_ms, 2),
        "projection_alone_gflop_s": round(proj_gflop / proj_ms * 1e3, 1),
        "projection_in_loop_ms": round(in_loop_ms, 3) if in_loop_ms else None,
        "projection_in_loop_gflop_s": round(proj_gflop / in_loop_ms * 1e3, 1)
        if in_loop_ms else None,
        "loop_form_ms_per_step": loop_form_ms(
            rows, logit["kernel"], 4 * logit["kernel"].shape[0], max_len, repeats),
        "working_set": working_set_ms(rows, logit["kernel"], WORKING_SET_EXTRA_MB, max_len,
                                      repeats),
        "read_gb_s_step_bytes": round(read_rate_gb_s(step_mb, repeats * 4), 2),
        "read_gb_s_stream": round(read_rate_gb_s(stream_mb, repeats), 2),
        "stream_mb": stream_mb,
    }


def main(argv=None) -> None:
    from data_prep.infra.host_memory import keep_freed_memory

    keep_freed_memory()  # before JAX's backend starts: see data_prep/infra/host_memory.py
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="CPUs to pin to (0: all)")
    p.add_argument("--max-len", type=int, default=30, help="caption token limit")
    p.add_argument("--repeats", type=int, default=15, help="timed calls (medians)")
    p.add_argument("--calls", type=int, default=5, help="calls traced")
    p.add_argument("--stream-mb", type=float, default=512.0,
                   help="buffer of the memory-read rate (larger than the last-level cache)")
    p.add_argument("--model", default="activitynet", choices=["activitynet", "runlocal"])
    p.add_argument("--json-out", default="", help="append the BENCH_JSON line here")
    args = p.parse_args(argv)
    if args.max_len < 2 or args.repeats < 1 or args.calls < 1:
        p.error("--max-len >= 2, --repeats >= 1 and --calls >= 1")
    from benchmarks.harness import emit, machine_info, pin_to_cores

    if args.threads:
        print("pinned to CPUs", pin_to_cores(args.threads))
    from data_prep.infra.jax_setup import enable_compilation_cache

    enable_compilation_cache()
    info = machine_info()
    model, params, batch = build(args.model)
    with tempfile.TemporaryDirectory() as trace_dir:
        rec = profile(model, params, batch, max_len=args.max_len, repeats=args.repeats,
                      calls=args.calls, stream_mb=args.stream_mb, trace_dir=trace_dir)
    print(f"batch 1, {rec['queries']} queries, {rec['steps_run']} greedy steps: call "
          f"{rec['call_ms']} ms ({rec['one_token_call_ms']} ms with 1 token) -> "
          f"{rec['step_ms']} ms per step")
    print(f"per step: {rec['step_kernels']} kernels, {rec['step_kernel_ms']} ms, "
          f"{rec['step_mb']} MB read + written -> {rec['step_gb_s']} GB/s")
    for r in rec["top_kernels"]:
        print(f"  {r['ms_per_step']:7.3f} ms  {r['mb_per_step']:7.2f} MB  "
              f"{r['gb_s'] or 0:6.1f} GB/s  {r['kernel']}  {r['op_name'][:60]}")
    print(f"word projection alone ({rec['projection_mb']} MB of weight, in cache): "
          f"{rec['projection_alone_ms']} ms -> {rec['projection_alone_gb_s']} GB/s, "
          f"{rec['projection_alone_gflop_s']} GFLOP/s; in the loop "
          f"{rec['projection_in_loop_gflop_s']} GFLOP/s (matmul peak: "
          f"{info.get('xla_matmul_gflops')} GFLOP/s)")
    print("a loop of the projection and a [R, 4R] product, ms per step: " + ", ".join(
        f"{k} {v}" for k, v in rec["loop_form_ms_per_step"].items()))
    print("the projection and one more product of N MB in a loop, ms per step (the two "
          "alone): " + ", ".join(f"{w['extra_mb']} MB {w['loop_ms']} ({w['parts_ms']})"
                                 for w in rec["working_set"]))
    print(f"a plain read: {rec['read_gb_s_step_bytes']} GB/s of a {rec['step_mb']} MB buffer, "
          f"{rec['read_gb_s_stream']} GB/s of a {rec['stream_mb']:.0f} MB one")
    emit({"bench": "decode_step_profile", "model": args.model, "batch": 1,
          "xla_flags": os.environ.get("XLA_FLAGS", ""),
          "threads": args.threads or os.cpu_count(), **rec, "machine": info},
         args.json_out or None)


if __name__ == "__main__":
    main()
