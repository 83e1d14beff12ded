"""`genkit export`: a run's model for others to open, in the format they read (format=...).

format=ckpt (the default) is genkit's own checkpoint: weights, the run's config and the data
module's state (a tokenizer), none of the training state, so it is the file to hand on to genkit.
The other formats live in genkit/formats, one module each; FORMATS maps each name to its writer.
merge=true folds LoRA adapters into the weights (formats other than ckpt always do: the libraries
that read them know nothing of genkit's adapters); merged, the model has the parameter names and
speed of a model without adapters, and its outputs equal the adapted model's up to float rounding.
"""

import importlib
import logging
from pathlib import Path

from omegaconf import DictConfig, open_dict

from genkit.checkpoints.files import config_of, load_checkpoint, resolve_checkpoint
from genkit.commands.options import CHECKPOINT_OPTIONS, MERGE, check_options
from genkit.errors import GenkitError
from genkit.formats.base import Exported
from genkit.options import BOOLEAN, Option, one_of
from genkit.training.finetune import merge_lora
from genkit.training.restore import load_model

log = logging.getLogger("genkit")

# format name -> "module:writer", writer(Exported, out) -> the path written. Named, as cli.py's
# COMMANDS are, so an export imports only its own format's library (diffusers alone takes ~0.8 s)
FORMATS = {
    "ckpt": "genkit.formats.ckpt:write_ckpt",
    "hf": "genkit.formats.hf:write_hf",
    "safetensors": "genkit.formats.safetensors:write_safetensors",
    "diffusers": "genkit.formats.diffusers:write_diffusers",
    "onnx": "genkit.formats.onnx:write_onnx",
}

OPTIONS = {
    **CHECKPOINT_OPTIONS,
    "out": Option(None, "where to write it: a .ckpt file, or a folder for the other formats (required)",
                  shown="out=<file or folder>"),
    "format": Option("ckpt", f"ckpt (genkit's checkpoint), or a folder another library opens: "
                     f"{', '.join(f for f in FORMATS if f != 'ckpt')} (docs/use-elsewhere.md)", one_of(*FORMATS)),
    "overwrite": Option(False, "replace out= when it exists (otherwise an existing out= is refused)", BOOLEAN),
    "merge": MERGE,
}  # fmt: skip


def export(cfg: DictConfig) -> Path:
    check_options("export", cfg, OPTIONS)
    if not cfg.out:
        raise GenkitError(
            "genkit export needs out=<file>: where to write the checkpoint, e.g. out=model.ckpt (a folder for "
            "format=hf or format=safetensors, e.g. out=my-model)."
        )
    out = Path(cfg.out).expanduser()
    path = resolve_checkpoint(cfg.ckpt, cfg.paths.log_dir, cfg.which)
    if out.resolve() == path.resolve():
        raise GenkitError(f"out={out} is the checkpoint being exported; write the export to another file.")
    if (out.exists() or out.is_symlink()) and not cfg.overwrite:
        raise GenkitError(
            f"out={out} already exists, and genkit export does not write over what is there; pick another out=, "
            f"or pass overwrite=true to replace it."
        )
    checkpoint = load_checkpoint(path)
    run_cfg = config_of(checkpoint, path)
    model, datamodule, _ = load_model(path, trusted_targets=cfg.trusted_targets, data_root=cfg.data_root)
    merged = merge_lora(model) if cfg.merge or cfg.format != "ckpt" else 0
    if merged:
        with open_dict(run_cfg):  # the exported model has no adapters to build
            run_cfg.finetune.lora.r = 0
    module, _, writer = FORMATS[cfg.format].partition(":")
    write = getattr(importlib.import_module(module), writer)
    write(Exported(model, datamodule, run_cfg, checkpoint, path, merged), out)
    how = f"{merged} LoRA layers merged into their weights" if merged else "weights only, no training state"
    if cfg.merge and not merged:
        how += " (the run has no LoRA adapters to merge)"
    log.info("Exported %s to %s (format=%s): %s", path, out, cfg.format, how)
    return out
