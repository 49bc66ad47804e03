"""Test-session setup: CPU JAX with 8 fake devices, a persistent compile cache, shared data.

Environment variables must be set before JAX is imported anywhere, hence module level.
"""
import os
import pathlib

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# 8 fake CPU devices so sharding code paths (Mesh, NamedSharding) run in tests. Models in
# tests are tiny, so splitting the host CPU this way costs little.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()
# Tests run tiny models for a few steps, so XLA's compilation is most of the suite's time
# (the runlocal captioner's train step: ~25 s to compile, ~0.1 s per step). LLVM optimisation
# level 0 for XLA's kernels compiles that step in 17.8 s instead of 24.8 s (its init in 3.9
# instead of 6.1 s), and the whole suite ran in 12:14 instead of 16:28 on 2 cores (fresh
# clones, same hour). XLA's HLO passes (fusion, layouts, simplification) still run, so the
# tests run the same programs, only not optimised by LLVM: results can differ from the default
# build by float rounding (the summation order of unvectorised reductions), which no test may
# depend on (level 0 is where a gradient that relied on two fusions rounding alike showed up:
# `pdvc.max_over_queries`). The launches tests start inherit it; entry points, benchmarks and
# `make demo` keep XLA's default. An XLA_FLAGS that names a level keeps that level.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(REPO_ROOT / ".jax_cache"))
if (SHARED / "nltk_data").is_dir():
    os.environ.setdefault("NLTK_DATA", str(SHARED / "nltk_data"))

from data_prep.infra.host_memory import keep_freed_memory  # noqa: E402

keep_freed_memory()  # as every entry point does (before JAX starts its threads)

import jax  # noqa: E402
import pytest  # noqa: E402
import suite_timeline  # noqa: E402
from suite_order import slowest_files_first  # noqa: E402

jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_collection_modifyitems(items: list) -> None:
    """Longest files first, so xdist's two workers end together (tests/suite_order.py)."""
    items[:] = slowest_files_first(items)


def pytest_configure(config) -> None:
    suite_timeline.configure(config)  # per-test times when DVC_TEST_TIMELINE names a folder


def pytest_runtest_logstart(nodeid: str, location) -> None:
    suite_timeline.record(nodeid, "start")


def pytest_runtest_logfinish(nodeid: str, location) -> None:
    suite_timeline.record(nodeid, "end")


def _require_data() -> bool:
    return os.environ.get("DVC_REQUIRE_DATA", "") == "1"


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """Path of ../shared/data. Skips when absent, but FAILS when DVC_REQUIRE_DATA=1 (CI)."""
    path = SHARED / "data"
    if not (path / "activitynet_captions" / "val_1.json").is_file():
        msg = f"shared data not found at {path}"
        if _require_data():
            pytest.fail(msg + " (DVC_REQUIRE_DATA=1)")
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def nltk_data_dir() -> pathlib.Path:
    """Path of the NLTK data; same fail-not-skip rule as `shared_data`."""
    path = pathlib.Path(os.environ.get("NLTK_DATA", SHARED / "nltk_data"))
    if not (path / "taggers").is_dir():
        msg = f"NLTK data not found at {path}"
        if _require_data():
            pytest.fail(msg + " (DVC_REQUIRE_DATA=1)")
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory) -> pathlib.Path:
    """A tiny synthetic data set (12 videos: 8 train / 4 val, 8-12 s, 64x64, 15 fps, seed 0).

    Layout (see data_prep/synthetic/generator.py): videos/<video_id>.mp4,
    captions/{train,val_1,val_2}.json, tsp/{train,valid}_tsp_groundtruth.csv,
    tsp/{train,valid}_metadata.csv, tsp/action_label_mapping.json,
    tsp/temporal_region_label_mapping.json, synthetic_events.json. Takes about a second.
    """
    from data_prep.synthetic.generator import DatasetOptions, generate_dataset
    from data_prep.synthetic.scene_sampler import SceneOptions

    root = tmp_path_factory.mktemp("synthetic_dataset")
    options = DatasetOptions(
        num_train=8, num_val=4, seed=0, workers=1,
        scene=SceneOptions(min_duration_s=8.0, max_duration_s=12.0, height=64, width=64),
    )
    generate_dataset(root, options)
    return root
