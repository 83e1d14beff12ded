"""`model.init_from=<genkit run dir or .ckpt>`: start a new run from another run's weights.

Weights only: the new run gets its own directory, a fresh optimizer and schedule. The starting
checkpoint is read as data (torch.load with weights_only), never built from its config, so a
stranger's run is as safe to start from as to sample. `model.init_strict=false` loads the
tensors whose names and shapes match and lists the others (e.g. the class embedding of a
conditional model started from an unconditional one).
"""

import logging
from functools import lru_cache
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from genkit.checkpoints.files import config_of, load_checkpoint, resolve_checkpoint
from genkit.checkpoints.safetensors_folder import is_safetensors_folder
from genkit.errors import GenkitError

log = logging.getLogger("genkit")


def starting_checkpoint(init_from) -> Path | None:
    """The checkpoint file that `init_from` names when it is a genkit run directory, a .ckpt file
    (its best.ckpt, else last.ckpt) or a safetensors export; None for anything else (a language model's
    Hugging Face id)."""
    if not init_from:
        return None
    path = Path(str(init_from)).expanduser()
    if (
        path.suffix == ".ckpt"
        or is_safetensors_folder(path)  # genkit export format=safetensors
        or path.is_dir()
        and any((path / d / "last.ckpt").is_file() for d in ("checkpoints", "."))
    ):
        return resolve_checkpoint(path, ".")
    return None


@lru_cache
def starting_config(path: Path) -> DictConfig:
    """The run config stored in the starting checkpoint (read once per process)."""
    return config_of(load_checkpoint(path), path)


def network_setting(path: Path, key: str, default=None):
    """A size of the starting run's network (`model.net.<key>`): a language model started from a genkit run
    takes its shape from it, as one started from GPT-2 takes it from config.json. `default`: the
    value for runs whose config has no such key."""
    cfg = starting_config(path)
    value = OmegaConf.select(cfg, f"model.net.{key}", default=default)
    if value is None:
        raise GenkitError(
            f"model.init_from={path} is a run of {cfg.model._target_}, whose network has no {key}; a language "
            f"model starts from a language model's run (or Hugging Face weights)."
        )
    return value


def load_starting_weights(model: nn.Module, path: Path, strict: bool = True) -> None:
    source = model.adapt_starting_weights(load_checkpoint(path)["state_dict"])
    if any("lora_" in k for k in source):
        raise GenkitError(
            f"model.init_from={path} holds LoRA adapters beside its weights. Fold them in first: genkit export "
            f"ckpt={path} out=<file> merge=true, then start from model.init_from=<file>."
        )
    target = model.state_dict()
    mismatched = [k for k in source if k in target and source[k].shape != target[k].shape]
    missing = [k for k in target if k not in source]
    unexpected = [k for k in source if k not in target]
    if strict and (mismatched or missing or unexpected):
        if mismatched:
            k = mismatched[0]
            what = (
                f"the first mismatched parameter is {k}: {tuple(source[k].shape)} there, {tuple(target[k].shape)} here"
            )
        elif missing:
            what = f"{len(missing)} parameters of this model are not in it, the first {missing[0]}"
        else:
            what = f"it holds {len(unexpected)} parameters this model lacks, the first {unexpected[0]}"
        raise GenkitError(
            f"model.init_from={path} does not fit this model: {what}. Build the model as that run did, or pass "
            f"model.init_strict=false to load what matches and start the rest fresh."
        )
    with torch.no_grad():
        for k in source:
            if k in target and k not in mismatched:
                target[k].copy_(source[k])
    skipped = mismatched + missing
    log.info("Started from the weights of %s (%d tensors)", path, len(source) - len(mismatched) - len(unexpected))
    if skipped or unexpected:
        log.info(
            "init_strict=false: started fresh %s; not used from the checkpoint: %s",
            ", ".join(skipped) or "nothing",
            ", ".join(unexpected) or "nothing",
        )
