"""Finding a run's checkpoint, reading it, and rebuilding the model it holds.

(Writing checkpoints is genkit.callbacks.checkpoint's.)"""

from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from genkit.build import build_datamodule, build_model
from genkit.errors import CheckpointError
from genkit.models.base import GenerativeModel
from genkit.trust import check_config, shipped_data_config

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


class LoadedRun(NamedTuple):
    model: GenerativeModel
    datamodule: L.LightningDataModule
    config: DictConfig


def load_model(path: str | Path, *, trusted_targets: Iterable[str] = (), data_root: str | None = None) -> LoadedRun:
    """Rebuild the model (and its data module) of a genkit checkpoint, in eval mode.

    The checkpoint's config is data, not code (genkit.trust): only trusted classes are built,
    data sets live under this machine's data root (`data_root`, else $GENKIT_DATA_DIR, else the
    user cache), and a built-in data set's files and checksums are genkit's own."""
    checkpoint = load_checkpoint(path)
    run_cfg = config_of(checkpoint, path)
    check_config(run_cfg, f"The config of checkpoint {path}", trusted_targets)
    with open_dict(run_cfg):
        run_cfg.data.root = data_root
        if "cache_dir" in run_cfg.data:
            run_cfg.data.cache_dir = None
        # a built-in data set's folder holds only its official files: genkit's list and checksums
        shipped = shipped_data_config(run_cfg.data.get("folder") or run_cfg.data.get("name"))
        if shipped is not None and "files" in shipped:
            run_cfg.data.files, run_cfg.data.mirrors = shipped.files, shipped.mirrors
        if run_cfg.model.get("init_from"):
            # `model.init_from` names the weights a run started from; the checkpoint holds its own
            run_cfg.model.init_from = None
        # compiling is a training speed-up: eval and sample run the plain networks
        run_cfg.trainer.compile = False
    model = build_model(run_cfg, report=False)
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    datamodule = build_datamodule(run_cfg)
    # what the data module saved of itself (a text model's tokenizer): sampling needs no data files
    datamodule.load_state_dict(checkpoint.get(type(datamodule).__qualname__) or {})
    return LoadedRun(model, datamodule, run_cfg)
