"""A trained run is read on other devices than those that saved it: a captioner trained on 8
devices (or 2 hosts, or an accelerator) predicts, fine-tunes with SCST or is released and used
on one CPU device. Orbax restores a checkpoint without a target onto the devices it was saved
from and refuses any other set ("Topology mismatch"); `Checkpointer.restore_to_host` and
`inference.restore_params` read it to host memory instead."""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from data_prep.infra import mesh as mesh_lib
from data_prep.infra.checkpointing import Checkpointer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Run in a process with ONE CPU device: the saved checkpoint's 8 devices are not there.
READER = """
import json, sys
import jax, numpy as np
from captioner_jax import inference
from data_prep.infra.checkpointing import Checkpointer
assert jax.device_count() == 1, jax.devices()
params, which, step = inference.restore_params(sys.argv[1])
with Checkpointer(sys.argv[1] + "/checkpoints") as ckpt:
    state = ckpt.restore_to_host(ckpt.latest_step())
print(json.dumps({
    "which": which, "step": step,
    "params": {k: [np.asarray(v).tolist(), str(v.dtype), type(v).__name__]
               for k, v in params["cell"].items()},
    "state_step": int(state["step"]), "mu": np.asarray(state["opt_state"]["mu"]).tolist()}))
"""


def _sharded_state():
    """A state laid out as training leaves it on the tests' 8 devices: one leaf split over
    them, one replicated, a bfloat16 leaf, an int32 step."""
    devices = mesh_lib.make_mesh((("data", -1),))
    split = NamedSharding(devices, P("data"))
    replicated = NamedSharding(devices, P())
    params = {"cell": {
        "kernel": jax.device_put(jnp.arange(16.0).reshape(8, 2), split),
        "bias": jax.device_put(jnp.array([0.5, -1.5, 2.25]), replicated),
        "scale": jax.device_put(jnp.array([1.0, 3.0], jnp.bfloat16), replicated)}}
    opt_state = {"mu": jax.device_put(jnp.arange(8.0) / 4, split)}
    step = jax.device_put(jnp.int32(7), replicated)
    return params, opt_state, step


def test_a_run_saved_on_8_devices_is_read_on_1(tmp_path):
    assert jax.device_count() == 8  # the tests' fake devices (conftest)
    params, opt_state, step = _sharded_state()
    with Checkpointer(str(tmp_path / "best")) as best:
        best.save(7, {"params": params, "step": step}, force=True)
    with Checkpointer(str(tmp_path / "checkpoints")) as ckpt:
        ckpt.save(7, {"params": params, "opt_state": opt_state, "step": step}, force=True)
        # In the saving process it reads back the same values, as NumPy.
        host = ckpt.restore_to_host(7)
    assert isinstance(host["params"]["cell"]["kernel"], np.ndarray)
    np.testing.assert_array_equal(host["opt_state"]["mu"], np.arange(8.0) / 4)

    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO,
               XLA_FLAGS="--xla_force_host_platform_device_count=1")
    out = subprocess.run([sys.executable, "-c", READER, str(tmp_path)], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert (got["which"], got["step"], got["state_step"]) == ("best", 7, 7)
    for name, leaf in params["cell"].items():
        values, dtype, kind = got["params"][name]
        assert kind == "ndarray" and dtype == str(leaf.dtype), name
        np.testing.assert_array_equal(np.asarray(values, np.float32),
                                      np.asarray(leaf, np.float32), err_msg=name)
    assert got["mu"] == (np.arange(8.0) / 4).tolist()
