"""Keeping a run's logs true across resumes."""

import lightning as L

from genkit.runs.csv_logger import RunCSVLogger


class ForgetRedoneSteps(L.Callback):
    """On resume, tells the CSV loggers which step the run continues from."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.ckpt_path and trainer.is_global_zero:
            for logger in trainer.loggers:
                if isinstance(logger, RunCSVLogger):
                    logger.forget_after(trainer.global_step)
