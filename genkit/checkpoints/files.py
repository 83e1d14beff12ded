"""Checkpoint files: finding a run's checkpoint, reading it (as data, never as code), and
writing it atomically. Rebuilding the model a checkpoint holds is genkit.training.restore's."""

import logging
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf

from genkit.atomic import atomic_path
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
        # memory-mapped: tensors are read from the file when used, so a command that needs only
        # the config and part of the weights reads only those (as litgpt loads)
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
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


# what Lightning needs to resume training, beside the weights: a file without them (a `genkit
# export`, a safetensors folder) holds a model, not a run that can go on
TRAINING_STATE = ("pytorch-lightning_version", "global_step", "loops", "optimizer_states")
STEP_FILE = re.compile(r"step_(\d+)\.ckpt")


class NotResumable(CheckpointError):
    """A checkpoint that cannot resume training: damaged, unreadable, or weights alone."""

    def __init__(self, path: Path, problem: str, weights_only: bool = False):
        super().__init__(f"{path} {problem}")
        self.path, self.problem, self.weights_only = path, problem, weights_only


def training_step(path: Path) -> int:
    """The global step of a checkpoint that can resume training, read as data (weights_only) and
    memory-mapped, so that its tensors are not read; NotResumable says why another cannot."""
    if is_safetensors_folder(path):
        raise NotResumable(path, "holds a model's weights without their training state", weights_only=True)
    if not is_intact(path):
        size = _size(path)
        raise NotResumable(
            path, f"is damaged ({f'{size} bytes' if size else 'empty'}, a full disk or a copy cut short)"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # torch.load raises many types for damaged files
        raise NotResumable(path, f"cannot be read ({first_line(err)})") from None
    if not isinstance(checkpoint, dict) or not all(key in checkpoint for key in TRAINING_STATE):
        raise NotResumable(path, "holds a model's weights without their training state", weights_only=True)
    if not isinstance(checkpoint["global_step"], int):
        raise NotResumable(path, f"has no step (global_step={checkpoint['global_step']!r})")
    return checkpoint["global_step"]


def newest_training_state(run_dir: Path) -> tuple[Path, int] | None:
    """The checkpoint a run in run_dir resumes from, and its step: of last.ckpt, the hpc_ckpt_*.ckpt
    that Lightning writes when SLURM signals a requeue, and the step_*.ckpt files, the intact one of
    the highest global step (at a tie last.ckpt or hpc_ckpt_*, written later in the step). Lightning
    writes a step's step_*.ckpt before its last.ckpt, so a kill between the two leaves the step file
    newer. Each step file's name gives its step, so only the files tried are opened; a damaged one
    is named in a warning. None when the run has no checkpoint; a run whose every checkpoint is
    damaged stops in one paragraph, since starting over would overwrite them."""
    folder = run_dir / "checkpoints"
    named = [p for p in (folder / LAST, *sorted(run_dir.glob("hpc_ckpt_*.ckpt"))) if p.is_file()]
    steps = [(int(m.group(1)), p) for p in folder.glob("step_*.ckpt") if (m := STEP_FILE.fullmatch(p.name))]
    if not named and not steps:
        return None
    # (step, 1 for a named state that wins a tie, its mtime, path), newest first; a named state that
    # cannot be read is left out at once, each step file when its turn comes
    order, skipped = [], []
    for path in named:
        try:
            order.append((training_step(path), 1, path.stat().st_mtime, path))
        except NotResumable as err:
            skipped.append(err)
    order += [(step, 0, 0.0, path) for step, path in steps]
    for step, is_named, _, path in sorted(order, key=lambda c: c[:3], reverse=True):
        if not is_named:
            try:
                step = training_step(path)
            except NotResumable as err:
                skipped.append(err)
                continue
        for err in skipped:
            log.warning("%s: resuming from %s instead.", err, path)
        return path, step
    raise CheckpointError(  # every candidate was skipped
        f"Cannot resume {run_dir}: its checkpoint {skipped[0]}, and it has no intact step_*.ckpt to "
        f"resume from instead. Train in a new directory (leave out hydra.run.dir), or pass resume=<a good "
        f"checkpoint of this run>."
    )


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


# what a failed write says when it does not come as an OSError: torch's zip writer reports a full
# disk as a RuntimeError ("PytorchStreamWriter failed writing file data/0: file write failed", or
# "unexpected pos" when a write stopped part way), safetensors as a SafetensorError naming the OS error
WRITE_FAILURES = ("file write failed", "unexpected pos", "No space left on device", "Disk quota exceeded")


def is_write_failure(err: BaseException) -> bool:
    """Whether err is a file failing to be written (a full disk, a read-only folder), not a bug."""
    return isinstance(err, OSError) or any(words in str(err) for words in WRITE_FAILURES)


def write_failure(err: BaseException) -> str:
    """`TypeName: what the OS said` for the paragraph that reports a failed write."""
    if isinstance(err, OSError) and err.strerror:
        return f"{type(err).__name__}: {err.strerror}"
    return first_line(err)


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save to a temporary file in the same folder, fsync, then rename over the target.

    A rename within one file system is atomic, so a kill at any moment leaves either the old
    or the new checkpoint, never a truncated one. (Lightning's own writer stages the file in
    /tmp and copies it across file systems, which is not atomic.)
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                torch.save(checkpoint, f)
        except Exception as err:
            if not is_write_failure(err):
                raise
            raise CheckpointWriteError(
                f"Could not write the checkpoint {path} ({write_failure(err)}). Make "
                f"{path.parent} writable (or free space on its disk); training stopped, and the checkpoints "
                f"already there are intact."
            ) from None

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        return load_checkpoint(path)


class CheckpointWriteError(GenkitError):
    """A checkpoint could not be written (read-only folder, full disk)."""
