"""Values of a training config that PyTorch or Lightning would reject only deep inside (a
ZeroDivisionError from `data.block_size=0`, a 128-line traceback from `model.net.n_embd=0`, a NaN
learning rate that trains to nothing), checked before anything is built, each refused in one
paragraph that names the key.

Sizes are recognised by name wherever they appear under model and data (a network of the user's
that calls its width `n_embd` is checked too); a value written as an interpolation (`${...}`) is the
value it points at, checked there.
"""

import difflib
import inspect
import logging
import math

from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf

from genkit.errors import GenkitError

log = logging.getLogger("genkit")

# sizes and counts that must be whole numbers of at least 1 wherever they appear under model or data
# (a signature names the arguments, not the values they take)
POSITIVE_SIZES = (
    "block_size", "batch_size", "eval_batch_size", "vocab_size", "image_size", "latent_dim", "n_layer", "n_embd",
    "n_head", "heads", "width", "base", "blocks_per_level", "timesteps", "sample_steps", "hidden_size",
    "num_layers", "embed_dim",
)  # fmt: skip
# keys of a `_target_` node that are Hydra's, not the class's
HYDRA_KEYS = {"_target_", "_partial_", "_convert_", "_recursive_", "_args_"}


def _literal(node: DictConfig, key) -> tuple[bool, object]:
    """(True, value) for a value written in the config; (False, None) for an interpolation or `???`."""
    if OmegaConf.is_interpolation(node, key) or OmegaConf.is_missing(node, key):
        return False, None
    return True, node[key]


def _walk(node, prefix: str):
    """(full key, parent node, key) for every entry below node."""
    if isinstance(node, DictConfig):
        for key in node:
            full = f"{prefix}.{key}"
            yield full, node, key
            if not OmegaConf.is_interpolation(node, key) and not OmegaConf.is_missing(node, key):
                yield from _walk(node[key], full)
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            if not OmegaConf.is_interpolation(node, i):
                yield from _walk(node[i], f"{prefix}[{i}]")


def _check_numbers(cfg: DictConfig) -> None:
    for group in ("model", "data", "trainer"):
        if not isinstance(cfg.get(group), DictConfig):
            continue
        for full, parent, key in _walk(cfg[group], group):
            if not isinstance(parent, DictConfig):
                continue
            written, value = _literal(parent, key)
            if not written or isinstance(value, bool):
                continue
            if isinstance(value, float) and not math.isfinite(value) and (key == "lr" or math.isnan(value)):
                raise GenkitError(
                    f"{full}={value} is not a number genkit can train with; give a finite value"
                    f"{' above 0 (e.g. 3e-4)' if key == 'lr' else ''}."
                )
            if key == "lr" and isinstance(value, int | float) and value <= 0:
                raise GenkitError(f"{full}={value} must be a learning rate above 0 (e.g. 3e-4).")
            if group != "trainer" and key in POSITIVE_SIZES and not (isinstance(value, int) and value >= 1):
                raise GenkitError(
                    f"{full}={value!r} must be a whole number of at least 1: it is a size or count, and nothing "
                    f"can be built with {value!r} of them."
                )


def _check_arguments(node: DictConfig, where: str, ignored: tuple[str, ...] = ()) -> None:
    """Every key of a `_target_` node must be an argument of its class (`++trainer.max_stepz=5`
    would reach Lightning as an unexpected keyword), unless the class takes **kwargs."""
    target = node.get("_target_")
    if not isinstance(target, str):
        return
    try:
        cls = get_object(target)  # a class, or a function that builds one (the progress bar)
        parameters = inspect.signature(cls).parameters
    except Exception:  # not importable: build's contract check says so, in its own words
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    partial = node.get("_partial_") is True
    for key in node:
        if key in HYDRA_KEYS or key in ignored or key in parameters:
            continue
        if partial and _literal(node, key) == (True, None):
            continue  # null in a partial: not passed (a recipe's SGD over lm.yaml's AdamW betas)
        close = difflib.get_close_matches(str(key), list(parameters), n=1, cutoff=0.6)
        hint = f"did you mean {where}.{close[0]}?" if close else f"its arguments: {', '.join(sorted(parameters))}."
        raise GenkitError(
            f"{where}.{key} is not an argument of {target}, which {where} builds; {hint} Drop the `+` or `++` that "
            f"added it and use the right name."
        )


def _say_what_unlimited_means(cfg: DictConfig) -> None:
    """trainer.max_steps=-1 is Lightning's "no step limit": the run ends after trainer.max_epochs."""
    if not HydraConfig.initialized():
        return
    given = [o for o in HydraConfig.get().overrides.task if o.lstrip("+").startswith("trainer.max_steps=")]
    if given and cfg.trainer.get("max_steps") == -1:
        epochs = cfg.trainer.get("max_epochs")
        until = "forever (trainer.max_epochs=-1 too: stop it with Ctrl-C)" if epochs == -1 else f"{epochs} epochs"
        log.info("trainer.max_steps=-1 means no step limit: this run trains for %s (trainer.max_epochs).", until)


def target_nodes(node, where: str):
    """(path, node) of every `_target_` node at or below node (interpolations and `???` skipped:
    what they point at is checked where it is written)."""
    if isinstance(node, DictConfig):
        if "_target_" in node and not OmegaConf.is_interpolation(node, "_target_"):
            yield where, node
        keys = [k for k in node if k not in HYDRA_KEYS]
    elif isinstance(node, ListConfig):
        keys = range(len(node))
    else:
        return
    for key in keys:
        if OmegaConf.is_interpolation(node, key) or OmegaConf.is_missing(node, key):
            continue
        yield from target_nodes(node[key], f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}")


def check_run_values(cfg: DictConfig, genkit_keys: dict[str, tuple[str, ...]] | None = None) -> None:
    """genkit_keys: path -> keys of that `_target_` node that genkit reads and removes before
    building it (no signature can say them)."""
    _check_numbers(cfg)
    # every component the run builds, bound against its class's signature before any is built
    # (as torchtune's `tune validate` binds each component's arguments)
    for group in cfg:
        if group == "hydra" or OmegaConf.is_interpolation(cfg, group) or OmegaConf.is_missing(cfg, group):
            continue
        for where, node in target_nodes(cfg[group], str(group)):
            _check_arguments(node, where, (genkit_keys or {}).get(where, ()))
    _say_what_unlimited_means(cfg)
