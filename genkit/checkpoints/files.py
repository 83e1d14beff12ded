"""Checkpoint files: finding a run's checkpoint, reading it (as data, never as code), and
writing it atomically. Rebuilding the model a checkpoint holds is genkit.training.restore's."""

import contextlib
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf

from genkit.checkpoints.safetensors_folder import is_safetensors_folder, read_safetensors_folder
from genkit.checkpoints.trust import with_current_targets
from genkit.errors import CheckpointError, GenkitError, first_line

log = logging.getLogger("genkit")

LAST = "last.ckpt"
BEST = "best.ckpt"


def find_latest(log_dir: str | Path) -> Path | None:
    """The most recently written last.ckpt below log_dir (runs and sweeps), if any."""
    candidates = [p for p in Path(log_dir).glob(f"**/checkpoints/{LAST}") if p.is_file()]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def resolve_checkpoint(ckpt: str | Path | None, log_dir: str | Path, which: str | None = None) -> Path:
    """A checkpoint file from a file path, a run directory, or (None) the newest run.

    In a run directory `which` picks checkpoints/best.ckpt (the best validation of the family's
    checkpoint metric) or last.ckpt; None takes best.ckpt when the run has one, else last.ckpt."""
    if ckpt is None:
        latest = find_latest(log_dir)
        if latest is None:
            raise CheckpointError(
                f"No ckpt given and no run with checkpoints/{LAST} under {Path(log_dir).resolve()}. "
                f"Train one first (`genkit train`) or pass ckpt=<run dir or .ckpt file>."
            )
        return _pick(latest.parent, which)
    path = Path(ckpt).expanduser()
    if is_safetensors_folder(path):  # `genkit export format=safetensors` wrote it
        return path
    if path.is_dir():
        for folder in (path / "checkpoints", path):
            if (folder / LAST).is_file():
                return _pick(folder, which)
        raise CheckpointError(
            f"{path} is a directory without checkpoints/{LAST}; pass a genkit run directory or a .ckpt file."
        )
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist; pass ckpt=<run dir or .ckpt file>.")
    if which is not None:
        raise CheckpointError(
            f"which={which} picks a checkpoint in a run directory, but ckpt={ckpt} is a file; pass the run "
            f"directory (ckpt={run_dir_of(path)}) or drop which=."
        )
    return path


def _pick(folder: Path, which: str | None) -> Path:
    best = folder / BEST
    if which == "last" or (which is None and not best.is_file()):
        return folder / LAST
    if not best.is_file():
        raise CheckpointError(
            f"{folder} has no {BEST}: its family ranks no checkpoints (the GAN's losses do not measure its "
            f"samples), or the run has not validated yet. Use which=last."
        )
    return best


def run_dir_of(checkpoint: Path) -> Path:
    """The run directory a checkpoint belongs to (<run>/checkpoints/x.ckpt, or <run>/x.ckpt)."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """torch.load with a clear error for truncated, corrupt or foreign files."""
    path = Path(path)
    if is_safetensors_folder(path):  # weights and config as plain data: nothing to unpickle
        return read_safetensors_folder(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many types for damaged files
        what = "is empty (0 bytes)" if _size(path) == 0 else f"cannot be read ({first_line(err)})"
        raise CheckpointError(
            f"Checkpoint {path} {what}: it is damaged (a full disk or a copy cut short), truncated, or not a "
            f"PyTorch checkpoint. Use another one, e.g. a step_*.ckpt beside it."
        ) from None


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def is_intact(path: Path) -> bool:
    """Whether a checkpoint file is whole, without loading it: torch.save writes a zip archive,
    whose central directory sits at its very end, so a file cut short (or empty) has none."""
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def newest_intact(candidates: list[Path], run_dir: Path) -> Path | None:
    """The newest of a run's states (last.ckpt, hpc_ckpt_*) if it is intact; else the newest
    intact step_*.ckpt, saying which file was damaged; None when the run has no state. A run whose
    every checkpoint is damaged stops in one paragraph: starting over would overwrite them."""
    if not candidates:
        return None
    newest = max(candidates, key=lambda p: p.stat().st_mtime)
    if is_intact(newest):
        return newest
    steps = sorted((run_dir / "checkpoints").glob("step_*.ckpt"), key=lambda p: p.name, reverse=True)
    good = next((p for p in steps if is_intact(p)), None)
    size = f"{_size(newest)} bytes" if _size(newest) else "empty"
    if good is None:
        raise CheckpointError(
            f"Cannot resume {run_dir}: its checkpoint {newest} is damaged ({size}; a full disk or a copy cut short) "
            f"and it has no intact step_*.ckpt to resume from instead. Train in a new directory (leave out "
            f"hydra.run.dir), or pass resume=<a good checkpoint of this run>."
        )
    log.warning("%s is damaged (%s, a full disk or a copy cut short): resuming from %s instead.", newest, size, good)
    return good


def config_of(checkpoint: dict[str, Any], path: str | Path) -> DictConfig:
    """The resolved run config stored in a genkit checkpoint."""
    meta = checkpoint.get("genkit") if isinstance(checkpoint, dict) else None
    if not meta or "config" not in meta or "state_dict" not in checkpoint:
        raise CheckpointError(
            f"{path} is not a genkit checkpoint (it carries no genkit run config); "
            f"pass a checkpoint written by `genkit train`."
        )
    # classes that moved since the checkpoint was written open under their current names
    return OmegaConf.create(with_current_targets(meta["config"]))


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save to a temporary file in the same folder, fsync, then rename over the target.

    A rename within one file system is atomic, so a kill at any moment leaves either the old
    or the new checkpoint, never a truncated one. (Lightning's own writer stages the file in
    /tmp and copies it across file systems, which is not atomic.)
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as err:
            with contextlib.suppress(OSError):  # the cleanup must not hide what went wrong
                tmp.unlink(missing_ok=True)
            raise CheckpointWriteError(
                f"Could not write the checkpoint {path} ({type(err).__name__}: {err.strerror or err}). Make "
                f"{path.parent} writable (or free space on its disk); training stopped, and the checkpoints "
                f"already there are intact."
            ) from None
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        return load_checkpoint(path)


class CheckpointWriteError(GenkitError):
    """A checkpoint could not be written (read-only folder, full disk)."""
