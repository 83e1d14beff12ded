"""Writing checkpoints atomically, and finding and reading a run's checkpoint."""

import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf

from genkit.errors import CheckpointError

LAST = "last.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save to a temporary file in the same folder, fsync, then rename over the target.

    A rename within one file system is atomic, so a kill at any moment leaves either the old
    or the new checkpoint, never a truncated one. (Lightning's own writer stages the file in
    /tmp and copies it across file systems, which is not atomic.)
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        return load_checkpoint(path)


def find_latest(log_dir: str | Path) -> Path | None:
    """The most recently written last.ckpt below log_dir (runs and sweeps), if any."""
    candidates = [p for p in Path(log_dir).glob(f"**/checkpoints/{LAST}") if p.is_file()]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def resolve_checkpoint(ckpt: str | Path | None, log_dir: str | Path) -> Path:
    """A checkpoint file from a file path, a run directory, or (None) the newest run."""
    if ckpt is None:
        latest = find_latest(log_dir)
        if latest is None:
            raise CheckpointError(
                f"No ckpt given and no run with checkpoints/{LAST} under {Path(log_dir).resolve()}. "
                f"Train one first (`genkit train`) or pass ckpt=<run dir or .ckpt file>."
            )
        return latest
    path = Path(ckpt).expanduser()
    if path.is_dir():
        for candidate in (path / "checkpoints" / LAST, path / LAST):
            if candidate.is_file():
                return candidate
        raise CheckpointError(
            f"{path} is a directory without checkpoints/{LAST}; pass a genkit run directory or a .ckpt file."
        )
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist; pass ckpt=<run dir or .ckpt file>.")
    return path


def run_dir_of(checkpoint: Path) -> Path:
    """The run directory a checkpoint belongs to (<run>/checkpoints/x.ckpt, or <run>/x.ckpt)."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """torch.load with a clear error for truncated, corrupt or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many types for damaged files
        raise CheckpointError(
            f"Checkpoint {path} cannot be read ({type(err).__name__}: {str(err).splitlines()[0][:200]}). "
            f"It is truncated, corrupt, or not a PyTorch checkpoint; use another one, e.g. a "
            f"step_*.ckpt beside it."
        ) from None


def config_of(checkpoint: dict[str, Any], path: str | Path) -> DictConfig:
    """The resolved run config stored in a genkit checkpoint."""
    meta = checkpoint.get("genkit") if isinstance(checkpoint, dict) else None
    if not meta or "config" not in meta or "state_dict" not in checkpoint:
        raise CheckpointError(
            f"{path} is not a genkit checkpoint (it carries no genkit run config); "
            f"pass a checkpoint written by `genkit train`."
        )
    return OmegaConf.create(meta["config"])
