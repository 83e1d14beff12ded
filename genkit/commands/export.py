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

from genkit.checkpoints.files import LAST, config_of, load_checkpoint, resolve_checkpoint, run_dir_of
from genkit.commands.command_options import CHECKPOINT_OPTIONS, MERGE, check_options
from genkit.errors import GenkitError
from genkit.formats.base import MARKER, Exported, is_export
from genkit.options import BOOLEAN, Option, one_of
from genkit.training.finetune import merge_lora
from genkit.training.restore import load_model

log = logging.getLogger("genkit")

# what `genkit train` puts in every run directory from its first moment (Hydra's config), from its
# first checkpoint on, and while it runs: any one of them marks a folder as a run
RUN_MARKS = (".hydra", f"checkpoints/{LAST}", "status.json")

# format name -> "module:writer", writer(Exported, out) -> the path written. Named, as cli.py's
# COMMANDS are, so an export imports only its own format's library (diffusers alone takes ~0.8 s)
FORMATS = {
    "ckpt": "genkit.formats.ckpt:write_ckpt",
    "hf": "genkit.formats.hf:write_hf",
    "safetensors": "genkit.formats.safetensors:write_safetensors",
    "diffusers": "genkit.formats.diffusers:write_diffusers",
    "onnx": "genkit.formats.onnx:write_onnx",
    "gguf": "genkit.formats.gguf:write_gguf",
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
    check_out(out, path, cfg.format, cfg.overwrite)
    checkpoint = load_checkpoint(path)
    run_cfg = config_of(checkpoint, path)
    model, datamodule, _ = load_model(path, trusted_targets=cfg.trusted_targets, data_root=cfg.data_root,
                                      checkpoint=checkpoint)  # fmt: skip
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


def is_run_dir(folder: Path) -> bool:
    return any((folder / mark).exists() for mark in RUN_MARKS)


def check_out(out: Path, source: Path, fmt: str, overwrite: bool) -> None:
    """Refuse an out= that would write over anything but an earlier export, whatever overwrite= says:
    a run's own files (its checkpoints, config, metrics: what resume and `genkit runs` read), the
    checkpoint being exported, or a folder or file that an export did not write."""
    target, source = out.resolve(), source.resolve()
    if target == source:
        raise GenkitError(f"out={out} is the checkpoint being exported; write the export to another file.")
    if source.is_dir() and target.is_relative_to(source):  # a safetensors export, read as it would be rewritten
        raise GenkitError(
            f"out={out} is inside the exported folder being read ({source}); write the export outside it."
        )
    run = next((d for d in (target, *target.parents) if is_run_dir(d)), None)
    if run is not None:
        home = run_dir_of(source)  # the run the source belongs to (when it belongs to one)
        whose = "the run directory being exported" if run == home else "a genkit run directory"
        where = f"is {whose}" if run == target else f"is inside {whose}, {run}"
        raise GenkitError(
            f"out={out} {where}: an export there would write over the run's own files (its checkpoints, config "
            f"and metrics, which resume and `genkit runs` read), so genkit export never writes into a run "
            f"directory, whatever overwrite= says. Pass an out= outside it, e.g. "
            f"out=exports/{run.name}{'.ckpt' if fmt == 'ckpt' else ''}."
        )
    if source.is_relative_to(target):
        raise GenkitError(
            f"out={out} holds the checkpoint being exported ({source}); writing the export there would delete "
            f"it, so genkit export refuses it whatever overwrite= says. Pass an out= that does not contain it."
        )
    if not (out.exists() or out.is_symlink()):
        return
    if not is_export(out):
        raise GenkitError(
            f"out={out} already exists and is not something genkit export wrote (an exported folder lists its "
            f"files in {MARKER}, an exported .ckpt records the run it came from), so genkit export does not "
            f"write over it, not even with overwrite=true. Pick another out=, or move {out} away first."
        )
    if not overwrite:
        raise GenkitError(
            f"out={out} already exists, and genkit export does not write over what is there; pick another out=, "
            f"or pass overwrite=true to replace it."
        )
    if fmt == "ckpt" and out.is_dir():
        raise GenkitError(
            f"out={out} is an exported folder, and format=ckpt writes a file; pick another out=, e.g. "
            f"out={out.name}.ckpt, or pass the format that folder holds."
        )
