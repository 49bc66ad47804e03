"""The config contract (issue 12 B), for every launchable config file and its common switches:

(a) an unknown switch in the config arg is a ValueError that names it;
(b) every key of the config is read by its stage: statically, each key's name (and the name of
    every block above it) occurs in the source of the modules the stage runs (the stage's
    module in the stage registry and every project module it imports, transitively) as an
    attribute `.key`, a string `"key"` (subscripts, `.get("key")`), a function parameter or
    a dataclass field (blocks splatted into a constructor: `MatcherCosts(**config.matcher)`);
(c) an override of a key the config lacks (`--config.x=...` misspelled) fails.

(b) is a name check, not data flow: it cannot tell `config.total_steps` from
`config.scst.total_steps`. Where a stage reads a block under the same names as another stage
(the captioner's XE, predict and SCST stages) `test_captioner_stage_key_sets` pins which keys
each one has.
"""
from __future__ import annotations

import ast
import functools
import glob
import os

import pytest

from data_prep.orchestration import registry
from data_prep.orchestration.config_files import apply_overrides, load_config_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT_PACKAGES = ("data_prep", "sa_tsp_jax", "captioner_jax")
HELPERS = {"__init__.py", "common.py", "base.py", "text_common.py", "scst_common.py"}

# Every launchable config with the switch sets worth checking (each variant is a different key
# set or a different stage). A new config file must be added here (test_every_config_listed).
LAUNCHABLE = {
    "configs/caption_baseline.py": [""],
    "configs/caption_video.py": ["", "size=tiny"],
    "configs/captioner/activitynet.py": ["", "predict", "mode=gt,head=light,extra=i3d+vggish",
                                         "h5=x.h5,runlocal"],
    "configs/captioner/activitynet_scst.py": ["", "runlocal,trainable=all"],
    "configs/captioner/synthetic.py": ["", "predict", "mode=gt,head=light,runlocal"],
    "configs/captioner/synthetic_scst.py": ["", "runlocal,reward=meteor_mix"],
    "configs/data/activitynet_subset.py": ["", "ids=v_a+v_b,size=32"],
    "configs/data/shards_activitynet.py": ["", "runlocal", "resize=keep"],
    "configs/data/shards_synthetic.py": ["", "runlocal,resize=128x171"],
    "configs/data/synthetic.py": ["", "size=tiny"],
    "configs/data/text_activitynet.py": ["", "pdvc_vocab"],
    "configs/data/text_synthetic.py": [""],
    "configs/ensemble/activitynet.py": ["", "rule=weighted_sum"],
    "configs/ensemble/synthetic.py": ["", "rule=weighted_sum"],
    "configs/evaluate.py": ["", "soda,para,runlocal"],
    "configs/pipeline/activitynet.py": ["", "runlocal", "features=f.h5,members=2"],
    "configs/pipeline/reproduce.py": ["", "size=tiny", "size=quick,seeds=3,m=3"],
    "configs/pipeline/synthetic.py": ["", "size=tiny"],
    "configs/reproduce/ensemble.py": ["", "proposals=learned,sizes=1+2"],
    "configs/reproduce/splits.py": [""],
    "configs/sa_tsp/activitynet.py": ["", "runlocal,bf16"],
    "configs/sa_tsp/extract_activitynet.py": ["", "bf16"],
    "configs/sa_tsp/extract_synthetic.py": [""],
    "configs/sa_tsp/synthetic.py": ["", "runlocal,gvf=g.h5"],
}
SPECS = [f"{path}:{arg}" if arg else path for path, args in LAUNCHABLE.items() for arg in args]

# Keys read by a generic mechanism rather than by the stage's own modules, with the reason.
GENERIC = {
    "stage": "launch.main and the pipeline runner dispatch on it",
}
# Blocks whose keys are names chosen by the config, not fields (the stage iterates over them).
NAMED_ENTRIES = {
    "splits": "write_shards: one entry per split to write, keyed by the split's name",
}
# Modules every stage runs besides its own: launch.main calls setup_jax(config), which reads
# the `run` block (distributed, coordinator_address, ...).
COMMON_MODULES = ("data_prep.infra.jax_setup",)


def _module_file(name: str) -> str | None:
    base = os.path.join(REPO, *name.split("."))
    for path in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(path):
            return path
    return None


def _imports(path: str, module: str) -> set[str]:
    """Project modules `path` imports (anywhere in the file, lazy imports included)."""
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # submodules
    roots = PROJECT_PACKAGES + ("launch",)
    return {m for m in found if m.split(".")[0] in roots}


@functools.cache
def stage_files(stage: str) -> tuple[str, ...]:
    """Source files of the stage's module and of every project module it imports."""
    start = registry.STAGES[stage].partition(":")[0]
    seen, todo, files = set(), [start, *COMMON_MODULES], []
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _module_file(module)
        if path is None:  # an imported name, not a module
            continue
        files.append(path)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run too
        todo += sorted(_imports(path, module))
    return tuple(sorted(files))


@functools.cache
def names_read(stage: str) -> frozenset[str]:
    """Every name the stage's source could read a config key by (see the module docstring)."""
    names = set()
    for path in stage_files(stage):
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.add(node.value)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.ClassDef):
                names.update(item.target.id for item in node.body
                             if isinstance(item, ast.AnnAssign)
                             and isinstance(item.target, ast.Name))
    return frozenset(names)


def leaf_keys(config, prefix: str = "") -> list[str]:
    """Dotted paths of every leaf; mappings inside lists appear as `key[].field`."""
    import ml_collections

    out = []
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            out += leaf_keys(value, f"{prefix}{key}.")
            continue
        out.append(prefix + key)
        for item in value if isinstance(value, list | tuple) else ():
            if isinstance(item, dict | ml_collections.ConfigDict):
                out += [f"{prefix}{key}[].{field}" for field in item]
    return out


def unread_keys(config) -> list[str]:
    names = names_read(config.stage)
    unread = []
    for dotted in leaf_keys(config):
        if dotted in GENERIC:
            continue
        parts = dotted.replace("[]", "").split(".")
        parts = [p for i, p in enumerate(parts) if i == 0 or parts[i - 1] not in NAMED_ENTRIES]
        if any(part not in names for part in parts):
            unread.append(dotted)
    return unread


def test_every_config_listed():
    files = sorted(os.path.relpath(p, REPO) for p in glob.glob(
        os.path.join(REPO, "configs", "**", "*.py"), recursive=True)
        if os.path.basename(p) not in HELPERS)
    assert files == sorted(LAUNCHABLE)


@pytest.mark.parametrize("spec", SPECS)
def test_unknown_switch_is_an_error_naming_it(spec):
    bogus = "no_such_switch_xyz=1"
    arg = spec.partition(":")[2]
    with pytest.raises(ValueError, match="no_such_switch_xyz"):
        load_config_file(f"{spec.partition(':')[0]}:{arg + ',' if arg else ''}{bogus}")


@pytest.mark.parametrize("spec", SPECS)
def test_every_key_is_read_by_its_stage(spec):
    config = load_config_file(spec)
    assert unread_keys(config) == [], (
        f"{spec}: keys that stage {config.stage} never reads; remove them from the config (or "
        "add them to GENERIC with the reason)")


@pytest.mark.parametrize("spec", SPECS)
def test_misspelled_override_fails(spec):
    config = load_config_file(spec)
    with pytest.raises(KeyError, match="no_such_key"):
        apply_overrides(config, {"no_such_key": 1})
    with pytest.raises(KeyError, match="no_such_key"):
        apply_overrides(config, {"run.no_such_key": 1})
    block = next((k for k, v in config.items() if hasattr(v, "items") and k != "run"), None)
    if block is not None:  # a nested block other than `run`
        with pytest.raises(KeyError, match="no_such_key"):
            apply_overrides(config, {f"{block}.no_such_key": 1})


def test_the_check_finds_an_unread_key():
    """(b) can fail: a key no module of the stage mentions is reported, nested ones too."""
    config = load_config_file("configs/evaluate.py")
    with config.unlocked():
        config.tious_typo = [0.5]
        config.run.no_such_setting = 1
    assert sorted(unread_keys(config)) == ["run.no_such_setting", "tious_typo"]


def test_stage_files_follow_imports():
    files = {os.path.relpath(f, REPO) for f in stage_files("captioner_scst")}
    assert "captioner_jax/scst/train_scst.py" in files
    assert "captioner_jax/inference.py" in files  # imported by train_scst
    assert "data_prep/infra/jax_setup.py" in files
    assert not any(f.startswith("sa_tsp_jax") for f in files)  # no encoder <-> captioner


XE_ONLY = {"optim", "matcher", "loss_weights", "num_epochs", "total_steps", "eval_every_epochs"}
TRAINING = {"seed", "sharding", "log_every_steps", "checkpoint_every_steps",
            "keep_checkpoints"}


@pytest.mark.parametrize("dataset", ["synthetic", "activitynet"])
def test_captioner_stage_key_sets(dataset):
    """XE, predict and SCST share blocks but not keys: each has only what its stage reads
    (an override of a key the stage would ignore, e.g. total_steps on SCST, is an error)."""
    xe = load_config_file(f"configs/captioner/{dataset}.py")
    predict = load_config_file(f"configs/captioner/{dataset}.py:predict")
    scst = load_config_file(f"configs/captioner/{dataset}_scst.py")
    assert (xe.stage, predict.stage, scst.stage) == (
        "captioner_train", "captioner_predict", "captioner_scst")
    assert XE_ONLY | TRAINING <= set(xe) and not {"predict", "init_from"} & set(xe)
    assert not (XE_ONLY | TRAINING) & set(predict) and "batch_size" not in predict.data
    assert set(predict.predict) == {"captions"} and predict.init_from == ""
    assert not XE_ONLY & set(scst) and TRAINING <= set(scst) and "predict" not in scst
    assert "rerank" not in scst.eval and "init_workdir" not in scst.scst
    with pytest.raises(KeyError, match="total_steps"):
        apply_overrides(scst, {"total_steps": 100})
    assert load_config_file(
        f"configs/captioner/{dataset}_scst.py:init=/runs/xe").init_from == "/runs/xe"


def test_switch_values_are_typed_and_checked():
    from configs.captioner import synthetic

    c = synthetic.get_config("epochs=5,lr=1e-3,runlocal")
    assert c.num_epochs == 5 and c.optim.lr == 1e-3
    with pytest.raises(ValueError, match="epochs"):
        synthetic.get_config("epochs=five")
    with pytest.raises(ValueError, match="epoch"):
        synthetic.get_config("epoch=5")  # the example: was silently ignored
    with pytest.raises(ValueError, match="mode"):
        synthetic.get_config("mode=gtt")
    with pytest.raises(ValueError, match="root"):
        synthetic.get_config("root")  # a value switch without a value
