"""Fine-tuning: which parameters of a started model train (`finetune.freeze`, `finetune.train_only`)
and LoRA adapters (`finetune.lora.*`, Hugging Face peft), plus folding adapters back into plain
weights (`genkit export merge=true`).

Parameter and module names are the model's own (`net.blocks.3.attn.qkv.weight`, see the table
printed at the start of a run); patterns are shell globs (`net.blocks.3.*`). A network that does
not train (the diffusion model's EMA copy) stays frozen whatever the patterns say.
"""

import fnmatch
import logging
import re
from collections.abc import Iterable, Mapping

from torch import nn
from transformers.pytorch_utils import Conv1D

from genkit.errors import GenkitError

log = logging.getLogger("genkit")

# the layer types peft can adapt with LoRA that genkit's networks use (Conv1D: transformers' GPT-2
# layers, a Linear with its weight transposed, model/lm_net@model.net=hf)
LORA_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Embedding, Conv1D)


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _patterns(finetune: Mapping, key: str) -> list[str]:
    patterns = finetune.get(key) or []
    if isinstance(patterns, str):
        raise GenkitError(f"finetune.{key}={patterns!r} must be a list of patterns, e.g. finetune.{key}=[{patterns}].")
    return list(patterns)


def _check_patterns(key: str, patterns: list[str], names: list[str], what: str) -> None:
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
            raise GenkitError(
                f"{key}: {pattern!r} matches no {what} of this model. Patterns are globs over names such as "
                f"{shown}; the table at the start of a run lists them all."
            )


def _lora_settings(lora: Mapping | None) -> dict | None:
    if not lora or not lora.get("r"):
        return None
    r, alpha, dropout = lora.get("r"), lora.get("alpha"), lora.get("dropout", 0.0)
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise GenkitError(f"finetune.lora.r={r!r} must be a whole number of at least 1 (the adapters' rank; 0: none).")
    if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, int | float) or alpha <= 0):
        raise GenkitError(f"finetune.lora.alpha={alpha!r} must be a positive number (default: 2 x r).")
    if not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        raise GenkitError(f"finetune.lora.dropout={dropout!r} must be in [0, 1).")
    return {"r": r, "alpha": alpha if alpha is not None else 2 * r, "dropout": float(dropout)}


def _lora_layers(model: nn.Module, targets: list[str], fixed: set[str]) -> list[str]:
    """The adaptable layers `targets` match, outside networks that never train (an EMA copy)."""
    layers = [
        name for name, m in model.named_modules() if isinstance(m, LORA_LAYERS) and name.split(".", 1)[0] not in fixed
    ]
    _check_patterns("finetune.lora.targets", targets, layers, "Linear, Conv or Embedding layer")
    chosen = [name for name in layers if _matches(name, targets)]
    # a weight shared by two layers (GPT's embedding and output head) would take the adapter's
    # update twice when merged, and one of the layers may never call its forward
    owners: dict[int, list[str]] = {}
    for name, m in model.named_modules():
        if isinstance(m, LORA_LAYERS):
            owners.setdefault(id(m.weight), []).append(name)
    for name in chosen:
        shared = owners[id(model.get_submodule(name).weight)]
        if len(shared) > 1:
            raise GenkitError(
                f"finetune.lora.targets: {name} shares its weight with {', '.join(n for n in shared if n != name)} "
                f"(tied weights), which LoRA cannot adapt; leave it out of the targets (train it in full with "
                f"finetune.train_only if needed)."
            )
    return chosen


def add_lora(model: nn.Module, settings: dict, targets: list[str], fixed: set[str]) -> list[str]:
    """LoRA adapters (peft) on the layers that `targets` match; only their weights train."""
    from peft import LoraConfig, inject_adapter_in_model

    layers = _lora_layers(model, targets, fixed)
    config = LoraConfig(
        r=settings["r"],
        lora_alpha=settings["alpha"],
        lora_dropout=settings["dropout"],
        # exactly these layers: peft matches a string as a regular expression on the whole name
        target_modules="|".join(re.escape(name) for name in layers),
    )
    inject_adapter_in_model(config, model)
    return layers


def merge_lora(model: nn.Module) -> int:
    """Fold every LoRA adapter into its layer's weight and put the plain layer back; returns how
    many layers were merged. The model then has the parameter names of a model without adapters."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    merged = 0
    for name, module in list(model.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, module.get_base_layer())
            merged += 1
    return merged


def apply_finetune(model, finetune: Mapping | None, *, report: bool = True) -> None:
    """Set what trains in `model` as `finetune` says: adapters first, then the patterns."""
    finetune = finetune or {}
    freeze, train_only = _patterns(finetune, "freeze"), _patterns(finetune, "train_only")
    lora = _lora_settings(finetune.get("lora"))
    if not (freeze or train_only or lora):
        return
    names = [n for n, _ in model.named_parameters()]
    _check_patterns("finetune.freeze", freeze, names, "parameter")
    _check_patterns("finetune.train_only", train_only, names, "parameter")
    # networks that never train (an EMA copy) stay out of every pattern
    fixed = {name for name, child in model.named_children() if not any(p.requires_grad for p in child.parameters())}
    if lora:
        targets = _patterns(finetune.get("lora") or {}, "targets") or list(model.lora_targets)
        if not targets:
            raise GenkitError(
                f"{type(model).__name__} names no layers for LoRA adapters; pass finetune.lora.targets=[<globs of "
                f"layer names>]."
            )
        layers = add_lora(model, lora, targets, fixed)
        log.info("LoRA r=%d alpha=%g on %d layers: %s", lora["r"], lora["alpha"], len(layers), _short(layers))
        model.adapters_added()
        # peft leaves only adapters trainable; the family may train some parts in full beside them
        # (patterns name parameters as they were before the adapters: x.weight, not x.base_layer.weight)
        for name, p in model.named_parameters():
            plain = name.replace(".base_layer.", ".")
            p.requires_grad = "lora_" in name or _matches(plain, model.lora_trains_fully) or _matches(plain, train_only)
    elif train_only:
        for name, p in model.named_parameters():
            p.requires_grad = _matches(name, train_only)
    for name, p in model.named_parameters():
        if _matches(name.replace(".base_layer.", "."), freeze) or name.split(".", 1)[0] in fixed:
            p.requires_grad = False
    # frozen batch norms keep their statistics too (GenerativeModel.train leaves them in eval mode)
    model.frozen_norms = [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        and m.track_running_stats
        and any(True for _ in m.parameters(recurse=False))
        and not any(p.requires_grad for p in m.parameters(recurse=False))
    ]
    for norm in model.frozen_norms:
        norm.eval()
    if not any(p.requires_grad for p in model.parameters()):
        raise GenkitError(
            "finetune.freeze / finetune.train_only leave no parameter to train; freeze fewer, or train_only more."
        )
    for network in model.must_train:
        if not any(p.requires_grad for p in model.get_submodule(network).parameters()):
            raise GenkitError(
                f"finetune.freeze / finetune.train_only leave the {network} of this {type(model).__name__} nothing to "
                f"train, and its networks train in turn ({', '.join(model.must_train)}): keep part of each trainable."
            )
    if report:
        log.info("What trains:\n%s", parameter_table(model))


def _short(names: list[str], shown: int = 4) -> str:
    return ", ".join(names[:shown]) + (f", ... ({len(names)} in all)" if len(names) > shown else "")


def parameter_table(model: nn.Module) -> str:
    """Trainable and frozen parameter counts per network and in all, with their shares."""
    rows: dict[str, list[int]] = {}
    for name, p in model.named_parameters():
        counts = rows.setdefault(name.split(".", 1)[0], [0, 0])
        counts[0 if p.requires_grad else 1] += p.numel()
    total = [sum(c[0] for c in rows.values()), sum(c[1] for c in rows.values())]
    lines = [f"  {'':<14}{'trainable':>12}{'frozen':>12}{'trainable share':>17}"]
    for name, (trainable, frozen) in [*rows.items(), *([("all", total)] if len(rows) > 1 else [])]:
        share = trainable / max(trainable + frozen, 1)
        lines.append(f"  {name:<14}{trainable:>12,}{frozen:>12,}{share:>16.1%}")
    return "\n".join(lines)
