"""`genkit train`: fit a model as its config says and return the final metrics."""

import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from genkit.build import build
from genkit.checkpoints import LAST, resolve_checkpoint
from genkit.errors import GenkitError, Interrupted

log = logging.getLogger("genkit")


class _LastValidation(L.Callback):
    """Remembers the step of the last validation, so train() knows whether to run a final one."""

    def __init__(self):
        self.step = -1

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.step = trainer.global_step


def resume_path(cfg: DictConfig) -> Path | None:
    """`resume=<run dir or ckpt>` if given, else this run directory's newest state: its last.ckpt,
    or the hpc_ckpt_*.ckpt that Lightning writes when SLURM signals a requeue, if newer."""
    if cfg.get("resume"):
        return resolve_checkpoint(cfg.resume, cfg.paths.log_dir)
    run_dir = Path(cfg.paths.output_dir)
    candidates = [p for p in (run_dir / "checkpoints" / LAST, *run_dir.glob("hpc_ckpt_*.ckpt")) if p.is_file()]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def _scalars(trainer: L.Trainer) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}


def train(cfg: DictConfig) -> dict[str, float]:
    """Train (and optionally test) the configured model; returns the logged metrics as floats."""
    parts = build(cfg)
    trainer = parts.trainer
    ckpt = resume_path(cfg)
    if ckpt is not None:
        log.info("Resuming from %s", ckpt)
    last_validation = _LastValidation()
    trainer.callbacks.append(last_validation)
    try:
        trainer.fit(parts.model, datamodule=parts.datamodule, ckpt_path=ckpt)
    except SIGTERMException:
        raise Interrupted(
            f"Training was stopped by SIGTERM at step {trainer.global_step}; its state is saved in "
            f"{Path(cfg.paths.output_dir) / 'checkpoints' / LAST}. Run the same command again to resume."
        ) from None
    metrics = _scalars(trainer)
    # runs that stop between validations (max_steps mid-epoch) still end with val metrics
    if last_validation.step != trainer.global_step and trainer.limit_val_batches != 0 and not trainer.interrupted:
        trainer.validate(parts.model, datamodule=parts.datamodule, verbose=False)
        metrics.update(_scalars(trainer))
    if cfg.get("test"):
        trainer.test(parts.model, datamodule=parts.datamodule, verbose=False)
        metrics.update(_scalars(trainer))
    log.info("Run directory: %s", cfg.paths.output_dir)
    return metrics


def train_job(cfg: DictConfig) -> float | None:
    """The Hydra job of `genkit train`: trains, and returns cfg.optimized_metric for sweepers."""
    metrics = train(cfg)
    name = cfg.get("optimized_metric")
    if not name:
        return None
    if name not in metrics:
        raise GenkitError(
            f"optimized_metric={name!r} was not logged by this run; logged metrics: {', '.join(sorted(metrics))}."
        )
    return metrics[name]
