"""What every export format receives (one run, rebuilt and with its LoRA adapters merged where
asked), how a format's folder is put in place without losing what was there before, and how an
earlier export is told from anything else (overwrite=true replaces only those)."""

import contextlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from genkit.checkpoints.files import is_write_failure, write_failure
from genkit.data.base import GenkitDataModule
from genkit.errors import GenkitError
from genkit.models.base import GenerativeModel


@dataclass
class Exported:
    """A run to export: its model in eval mode, its data module (a text model's tokenizer), the run
    config (resolved; with no adapters to build once merged) and the checkpoint file it came from."""

    model: GenerativeModel
    datamodule: GenkitDataModule
    config: DictConfig
    checkpoint: dict[str, Any]  # the checkpoint as read (weights only): its step and genkit metadata
    source: Path
    merged: int  # LoRA layers folded into their weights


def exported_record(run: Exported) -> dict[str, Any]:
    """What an exported file carries beside the weights: genkit's metadata with the run config (as
    exported), where it came from, and the training step it holds."""
    return {
        "genkit": {
            **run.checkpoint["genkit"],
            "config": OmegaConf.to_container(run.config),
            "exported_from": str(run.source),
            "merged_lora_layers": run.merged,
        },
        "global_step": run.checkpoint.get("global_step"),
        "epoch": run.checkpoint.get("epoch"),
    }


# written into every exported folder: the files the export put there, so that overwrite=true
# replaces a folder only when all it holds is what an export wrote (hidden: the libraries that
# open the folder, and their users, need not see it)
MARKER = ".genkit-export.json"


def is_export(path: Path) -> bool:
    """Whether `path` is what `genkit export` wrote, with nothing added: a folder whose marker lists
    every file in it, or a checkpoint whose genkit metadata says where it was exported from."""
    if path.is_symlink():
        return False
    if path.is_dir():
        try:
            listed = set(json.loads((path / MARKER).read_text())["files"])
        except (OSError, ValueError, KeyError, TypeError):
            return False
        return set(_files_in(path)) - {MARKER} <= listed
    if not path.is_file():  # a FIFO or a device would block torch.load
        return False
    try:
        # memory-mapped: only the metadata is read, not the weights; a file that is not a
        # checkpoint (or a damaged one) fails to open, and is then not an export
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return False
    meta = checkpoint.get("genkit") if isinstance(checkpoint, dict) else None
    return isinstance(meta, dict) and "exported_from" in meta


def _files_in(folder: Path) -> list[str]:
    """Everything in folder but its sub-folders, as paths relative to it."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir() or p.is_symlink())


class FormatUnsupported(GenkitError):
    """The run's family or network has no form in the format asked for."""


def write_folder(out: Path, fill: Callable[[Path], None]) -> Path:
    """Fill a new folder beside `out`, then put it at `out` in one rename: a failed export leaves
    no half-written folder, and an existing `out` (overwrite=true) is replaced only once the new
    one is complete."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    old = out.with_name(f".{out.name}.{os.getpid()}.old")
    for leftover in (tmp, old):
        _remove(leftover)
    tmp.mkdir()
    try:
        fill(tmp)
        (tmp / MARKER).write_text(json.dumps({"written_by": "genkit export", "files": _files_in(tmp)}, indent=1))
        # safetensors creates its files readable by their owner alone (0600): give every file the
        # permissions the user's umask gives new files, as any other file they write
        umask = os.umask(0)
        os.umask(umask)
        for path in tmp.rglob("*"):
            path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)
        if out.exists() or out.is_symlink():
            os.replace(out, old)
        os.replace(tmp, out)
    except Exception as err:
        if not is_write_failure(err):
            raise
        raise GenkitError(
            f"Could not write the export to {out} ({write_failure(err)}); pass out=<a folder you can write, on a "
            f"disk with space> (the run itself is unchanged)."
        ) from None
    finally:
        with contextlib.suppress(OSError):
            _remove(tmp)
            _remove(old)
    return out


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
