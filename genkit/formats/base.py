"""What every export format receives (one run, rebuilt and with its LoRA adapters merged where
asked) and how a format's folder is put in place without losing what was there before."""

import contextlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

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
        # safetensors creates its files readable by their owner alone (0600): give every file the
        # permissions the user's umask gives new files, as any other file they write
        umask = os.umask(0)
        os.umask(umask)
        for path in tmp.rglob("*"):
            path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)
        if out.exists() or out.is_symlink():
            os.replace(out, old)
        os.replace(tmp, out)
    except OSError as err:
        raise GenkitError(
            f"Could not write the export to {out} ({type(err).__name__}: {err.strerror or err}); pass out=<a folder "
            f"you can write> (the run itself is unchanged)."
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
