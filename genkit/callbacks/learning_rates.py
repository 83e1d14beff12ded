"""Logs each optimizer's learning rate as `lr/<name>` (`lr` when there is one optimizer), the
names coming from the family (`GenerativeModel.optimizer_names`: `lr/generator`,
`lr/discriminator` for the GAN) instead of optimizer class names such as `lr-Adam-1`."""

import lightning as L


class LearningRates(L.Callback):
    def __init__(self, every_n_steps: int = 10):
        self.every_n_steps = every_n_steps

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if trainer.global_step % self.every_n_steps or not trainer.loggers or not trainer.is_global_zero:
            return
        optimizers = trainer.optimizers
        names = pl_module.optimizer_names  # GenerativeModel's contract
        metrics = {}
        for i, optimizer in enumerate(optimizers):
            key = "lr" if len(optimizers) == 1 else f"lr/{names[i] if i < len(names) else i}"
            metrics[key] = optimizer.param_groups[0]["lr"]
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
