"""Stops a run whose validation metric no longer improves: Lightning's EarlyStopping on the
family's `checkpoint_metric` (the one best.ckpt is ranked by), off unless `patience` is set."""

import logging

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping

from genkit.errors import GenkitError

log = logging.getLogger("genkit")


class EarlyStoppingOnMetric(EarlyStopping):
    def __init__(self, patience: int | None = None, min_delta: float = 0.0):
        if patience is not None and (not isinstance(patience, int) or isinstance(patience, bool) or patience < 1):
            raise GenkitError(
                f"callbacks.early_stopping.patience={patience!r} must be a whole number of validations of at least "
                f"1 without improvement, or null (no early stopping)."
            )
        # check after each validation, not at epoch ends (runs may validate every N steps)
        super().__init__(
            monitor="val/loss", patience=patience or 1, min_delta=min_delta, check_on_train_epoch_end=False
        )
        self.active = patience is not None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        metric = pl_module.checkpoint_metric
        if metric is None:
            if self.active:
                log.info("early stopping is off: %s names no validation metric to watch", type(pl_module).__name__)
            self.active = False
        elif self.active:
            self.monitor, self.mode = metric
            self.min_delta = abs(self.min_delta) * (1 if self.mode == "max" else -1)
            self.best_score = torch.tensor(torch.inf if self.mode == "min" else -torch.inf)

    def _should_skip_check(self, trainer: L.Trainer) -> bool:
        return not self.active or super()._should_skip_check(trainer)

    def _run_early_stopping_check(self, trainer: L.Trainer) -> None:
        super()._run_early_stopping_check(trainer)
        if trainer.should_stop and self.stopped_epoch == trainer.current_epoch and self.stopping_reason_message:
            log.info("Early stopping at step %d: %s", trainer.global_step, self.stopping_reason_message)
