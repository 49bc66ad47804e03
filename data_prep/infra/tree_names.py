"""Names of pytree leaves: the one way to turn a key path into a string."""
from __future__ import annotations

import jax


def key_path_name(path) -> str:
    """'/'-joined key path of a pytree leaf, e.g. 'params/caption_head/lstm/kernel'."""
    parts = []
    for k in path:
        if isinstance(k, jax.tree_util.DictKey):
            parts.append(str(k.key))
        elif isinstance(k, jax.tree_util.GetAttrKey):
            parts.append(k.name)
        elif isinstance(k, jax.tree_util.SequenceKey):
            parts.append(str(k.idx))
        else:
            parts.append(str(k))
    return "/".join(parts)
