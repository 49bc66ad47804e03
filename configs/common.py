"""Helpers shared by config files: switch parsing and the `run` block every stage gets."""
from __future__ import annotations

import ml_collections

_TRUE = ("", "1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _cast(key: str, text: str, default):
    if isinstance(default, type):  # an optional switch: None unless given, then this type
        default = default()
    if isinstance(default, bool):
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"config switch {key}={text!r}: expected a boolean (1/0/true/false)")
    if default is None or isinstance(default, str):
        return text
    try:
        return type(default)(text)
    except ValueError:
        raise ValueError(f"config switch {key}={text!r}: expected {type(default).__name__}"
                         ) from None


def parse_arg(arg: str | None, **spec) -> ml_collections.ConfigDict:
    """The config arg `'a=1,b,c=x'` -> ConfigDict of `spec` (big_vision's `parse_arg`).

    `spec` names every switch the config understands with its default; a value is cast to
    the default's type (a bare `b` means True for a bool switch). A type instead of a default
    (`epochs=int`) declares an optional switch: None unless given, so the config can keep its
    own value (which may depend on other switches) when the switch is absent. An unknown
    switch is a ValueError that lists the known ones, so `epoch=5` (for `epochs=5`) cannot be
    ignored silently.
    """
    out = ml_collections.ConfigDict(
        {k: None if isinstance(v, type) else v for k, v in spec.items()})
    for item in (arg or "").split(","):
        if not item.strip():
            continue
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if key not in spec:
            raise ValueError(f"unknown config switch {key!r} in {arg!r}; known switches: "
                             f"{', '.join(sorted(spec)) or '(none)'}")
        default = spec[key]
        if not eq and not (isinstance(default, bool) or default is bool):
            raise ValueError(f"config switch {key!r} needs a value ({key}=...)")
        out[key] = _cast(key, value, default)
    return out


def run_block() -> ml_collections.ConfigDict:
    """`config.run`: how the process runs (data_prep/infra/jax_setup.py reads it).

    Multi-host: `--config.run.distributed=True` on every host (Cloud TPU and SLURM detect the
    rest); elsewhere also coordinator_address, num_processes and process_id.
    """
    return ml_collections.ConfigDict(dict(
        distributed=False, coordinator_address="", num_processes=0, process_id=-1,
        local_device_ids=""))


def one_of(name: str, value, choices) -> object:
    """`value` if it is one of `choices`, else a ValueError naming switch `name`."""
    if value not in choices:
        raise ValueError(f"config switch {name}={value!r}: expected one of "
                         f"{', '.join(map(str, choices))}")
    return value
