"""Helpers shared by config files."""
from __future__ import annotations


def parse_arg(arg: str | None) -> dict[str, str]:
    """The config arg `'a=1,b,c=x'` -> `{'a': '1', 'b': '', 'c': 'x'}` (big_vision style
    switches: `python launch.py --config configs/x.py:a=1,b`)."""
    out = {}
    for item in (arg or "").split(","):
        if item.strip():
            key, _, value = item.partition("=")
            out[key.strip()] = value.strip()
    return out
