"""benchmarks/decode_step_profile.py: the bytes it charges each XLA kernel (a row lookup
reads the row, not the table; an in-place update writes the update; a product reads its
operands whole), the kernels it counts as one greedy step's, its trace reading, and the
whole command on the tests' tiny captioner."""
import gzip
import json
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import decode_step_profile as profile


def test_shape_bytes_of_arrays_scalars_and_tuples():
    assert profile.shape_bytes("f32[10,512]{1,0}") == 10 * 512 * 4
    assert profile.shape_bytes("s32[]") == 4
    assert profile.shape_bytes("(f32[2,3]{1,0}, bf16[4]{0}, pred[])") == 24 + 8 + 1
    assert profile.shape_bytes("token[]") == 0


@pytest.fixture(scope="module")
def lookup_product_update():
    """A compiled program with a row lookup in a [1000, 256] table, a [4, 64] x [64, 300]
    product and an in-place (donated) update of a [50, 4, 300] buffer -> its instructions."""

    @partial(jax.jit, donate_argnums=(4,))
    def program(table, idx, h, w, buf, t):
        rows = table[idx]  # [4, 256]
        y = h @ w
        buf = jax.lax.dynamic_update_slice(buf, (y * 2.0)[None], (t, 0, 0))
        return rows, buf

    args = (jnp.ones((1000, 256)), jnp.array([1, 5, 7, 9]), jnp.ones((4, 64)),
            jnp.ones((64, 300)), jnp.zeros((50, 4, 300)), jnp.int32(3))
    return profile.hlo_instructions(program.lower(*args).compile().as_text())


def _kernels_doing(instructions, opcode):
    """Entry kernels that are `opcode` or fusions containing one."""
    entry = {i["computation"] for i in instructions.values() if i["opcode"] == "parameter"
             and i["computation"] and "fused" not in i["computation"]
             and "region" not in i["computation"]}
    found = []
    for name, ins in instructions.items():
        if ins["computation"] not in entry:
            continue
        if ins["opcode"] == opcode or (ins["calls"] and any(
                i["opcode"] == opcode for i in instructions.values()
                if i["computation"] == ins["calls"])):
            found.append(name)
    return found


def test_a_row_lookup_reads_the_rows_not_the_table(lookup_product_update):
    ins = lookup_product_update
    (kernel,) = _kernels_doing(ins, "gather")
    got = profile.kernel_bytes(ins, kernel)
    rows = 4 * 256 * 4
    assert 2 * rows <= got <= 2 * rows + 64, got  # the rows read and written, the indices
    assert got < 1000 * 256 * 4 / 50


def test_a_product_reads_its_operands_whole(lookup_product_update):
    ins = lookup_product_update
    kernels = _kernels_doing(ins, "dot")
    assert kernels, "no dot kernel"
    got = max(profile.kernel_bytes(ins, k) for k in kernels)
    assert got >= (4 * 64 + 64 * 300 + 4 * 300) * 4


def test_an_in_place_update_writes_the_update_only(lookup_product_update):
    ins = lookup_product_update
    (kernel,) = _kernels_doing(ins, "dynamic-update-slice")
    got = profile.kernel_bytes(ins, kernel)
    update = 4 * 300 * 4
    assert update <= got <= 3 * update + 64, got  # never the [50, 4, 300] buffer
    assert got < 50 * 4 * 300 * 4 / 10


def test_trace_times_sum_the_named_complete_events(tmp_path):
    events = [{"ph": "X", "name": "dot.1", "dur": 100}, {"ph": "X", "name": "dot.1", "dur": 300},
              {"ph": "X", "name": "while.2", "dur": 1000}, {"ph": "i", "name": "dot.1"},
              {"ph": "X", "name": "PjitFunction(f)", "dur": 5000}]
    folder = tmp_path / "plugins" / "profile" / "run"
    folder.mkdir(parents=True)
    with gzip.open(folder / "host.trace.json.gz", "wt") as f:
        json.dump({"traceEvents": events}, f)
    got = profile.trace_kernel_times(str(tmp_path), {"dot.1", "while.2"})
    assert got == {"dot.1": (pytest.approx(400e-6), 2), "while.2": (pytest.approx(1e-3), 1)}
    with pytest.raises(FileNotFoundError, match="trace.json.gz"):
        profile.trace_kernel_times(str(tmp_path / "empty"), {"dot.1"})


def test_loop_steps_count_words_and_the_end():
    tokens = np.zeros((1, 3, 6), np.int32)
    tokens[0, 0, :2] = 5  # two words, EOS at step 3
    tokens[0, 1, :4] = 7  # four words, EOS at step 5
    assert profile.loop_steps(tokens, 6) == 5
    tokens[0, 2, :] = 9  # never ends: all 6 steps
    assert profile.loop_steps(tokens, 6) == 6
    assert profile.loop_steps(np.zeros((1, 2, 6), np.int32), 6) == 1


def test_step_kernels_are_those_run_once_per_step():
    instructions = {
        "dot.1": {"opcode": "dot", "bytes_out": 400, "operands": ["p.1"], "op_name": "body/dot",
                  "computation": "main", "root": False, "calls": None, "parameter": None},
        "p.1": {"opcode": "parameter", "bytes_out": 1600, "operands": [], "op_name": "",
                "computation": "main", "root": False, "calls": None, "parameter": 0},
        "while.3": {"opcode": "while", "bytes_out": 4, "operands": [], "op_name": "",
                    "computation": "main", "root": False, "calls": None, "parameter": None},
        "add.4": {"opcode": "add", "bytes_out": 8, "operands": [], "op_name": "",
                  "computation": "main", "root": False, "calls": None, "parameter": None},
    }
    kernels = {"dot.1": (0.006, 6), "while.3": (1.0, 6), "add.4": (0.001, 2)}
    (row,) = profile.step_kernels(kernels, instructions, calls=2, steps=3)
    assert row["kernel"] == "dot.1"
    assert row["ms_per_step"] == pytest.approx(1.0)
    assert row["mb_per_step"] == pytest.approx(2000 / 1e6)
    assert row["gb_s"] == pytest.approx(2000 / 1e-3 / 1e9)


def test_command_on_the_tiny_captioner(tmp_path, capsys):
    out = tmp_path / "d.jsonl"
    profile.main(["--model", "runlocal", "--threads", "0", "--max-len", "4", "--repeats", "2",
                  "--calls", "2", "--stream-mb", "4", "--json-out", str(out)])
    (rec,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert rec["bench"] == "decode_step_profile" and rec["model"] == "runlocal"
    assert 1 <= rec["steps_run"] <= 4 and rec["queries"] > 0
    assert rec["call_ms"] > 0 and rec["one_token_call_ms"] > 0
    assert rec["projection_mb"] > 0 and rec["projection_alone_gb_s"] > 0
    assert rec["read_gb_s_stream"] > 0 and rec["machine"]["xla_matmul_gflops"] > 0
    assert set(rec["loop_form_ms_per_step"]) == set(profile.PROJECTION_FORMS)
    assert all(ms > 0 for ms in rec["loop_form_ms_per_step"].values())
    assert [w["extra_mb"] for w in rec["working_set"]] == list(profile.WORKING_SET_EXTRA_MB)
    assert all(w["loop_ms"] > 0 and w["parts_ms"] > 0 for w in rec["working_set"])
    if rec["steps_run"] > 1:  # a loop ran: its kernels were found in the trace
        assert rec["step_kernels"] > 0 and rec["step_mb"] > rec["projection_mb"]
        assert rec["top_kernels"][0]["ms_per_step"] > 0
    assert "per step" in capsys.readouterr().out


def test_the_projection_forms_compute_the_same_product():
    rng = np.random.default_rng(0)
    h = jnp.asarray(rng.normal(size=(3, 16)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(16, 23)), jnp.float32)  # 23: uneven blocks
    want = np.asarray(h) @ np.asarray(kernel)
    for name, form in profile.PROJECTION_FORMS.items():
        np.testing.assert_allclose(jax.jit(form)(h, kernel), want, rtol=1e-5, atol=1e-5,
                                   err_msg=name)
