"""`genkit train trainer.max_stepz=5`: Hydra's own answer is a two-part message that advises
`+trainer.max_stepz=5`, which would keep the typo (and reach Lightning as an unexpected argument).
genkit names the closest real key instead, in one paragraph."""

import difflib

from omegaconf import DictConfig
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException


def _keys(node: DictConfig, prefix: str = "") -> list[str]:
    """Every full key below node, without resolving interpolations."""
    keys = []
    for key in node:
        full = f"{prefix}{key}"
        keys.append(full)
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_interpolation() and not child._is_missing():
            keys += _keys(child, f"{full}.")
    return keys


def _likeness(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


def composition_error(command: str, err: Exception) -> str:
    """One paragraph for a config that Hydra could not compose from the command line."""
    cause = err.__cause__
    if isinstance(cause, ConfigAttributeError | ConfigKeyError) and cause.full_key and cause.parent_node is not None:
        key, parent = str(cause.full_key), cause.parent_node
        prefix = key.rpartition(".")[0]
        siblings = [str(k) for k in parent] if isinstance(parent, DictConfig) else []
        root = parent._get_root()
        everything = _keys(root) if isinstance(root, DictConfig) else siblings
        # the closest key by its full name, or by its last part (`optimiser`: model.optimizer_g)
        leaf = str(cause.key)
        scored = [(max(_likeness(k, key), _likeness(k.rpartition(".")[2], leaf)), k) for k in everything]
        best = max(scored, default=(0.0, None))
        suggestion = best[1] if best[0] >= 0.7 else None
        if suggestion:
            return (
                f"`{key}` is not a key of the `genkit {command}` config: did you mean {suggestion}? Pass "
                f"{suggestion}=<value> (a `+` in front would add the misspelt key instead)."
            )
        listed = ", ".join(siblings[:20]) + (", ..." if len(siblings) > 20 else "")
        where = f"under {prefix}" if prefix else "at the top level"
        return (
            f"`{key}` is not a key of the `genkit {command}` config; the keys {where} are: {listed}. "
            f"`genkit {command} --cfg job` prints the whole config."
        )
    detail = f" ({' '.join(str(cause).split())})" if isinstance(cause, OmegaConfBaseException) else ""
    return f"{' '.join(str(err).split())}{detail} See `genkit {command} --help`."
