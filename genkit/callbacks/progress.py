"""Progress reporting: a rich bar on a terminal, plain log lines elsewhere.

When stdout is not a terminal (CI, SLURM logs, pipes) a live bar only shows its last frame, so
genkit then logs one line every N steps and one at the end of each validation instead. On a
terminal the same lines still go to <run_dir>/genkit.log (the `genkit.file` logger, whose only
handler is that file), so the run's log holds its progress either way.
"""

import logging
import sys
import time

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar

log = logging.getLogger("genkit")
# configs/hydra/job_logging/genkit.yaml gives it the run's log file as its only handler
file_log = logging.getLogger("genkit.file")


def _format(metrics: dict) -> str:
    return "  ".join(f"{k}={float(v):.4g}" for k, v in sorted(metrics.items()) if getattr(v, "numel", lambda: 1)() == 1)


class LineProgressBar(ProgressBar):
    """One log line every `every_n_steps` training steps and after every validation."""

    def __init__(self, every_n_steps: int = 50, logger: logging.Logger = log):
        super().__init__()
        self.every_n_steps, self._logger = every_n_steps, logger
        self._enabled = True
        self._t0 = self._last_step_time = 0.0
        self._last_step = self._first_step = 0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = self._last_step_time = time.perf_counter()
        self._last_step = self._first_step = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        # the first step too: without it a slow machine shows nothing for minutes
        due = step % self.every_n_steps == 0 or step == self._first_step + 1
        if not (self._enabled and trainer.is_global_zero) or not due or step == self._last_step:
            return
        now = time.perf_counter()
        rate = (step - self._last_step) / max(now - self._last_step_time, 1e-9)
        self._last_step, self._last_step_time = step, now
        total = trainer.max_steps if trainer.max_steps > 0 else trainer.estimated_stepping_batches
        train = {k: v for k, v in trainer.progress_bar_metrics.items() if k.startswith("train/")}
        self._logger.info(
            "epoch %d  step %d/%s  %.2f it/s  %s", trainer.current_epoch, step, total, rate, _format(train)
        )

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._enabled and trainer.is_global_zero and not trainer.sanity_checking:
            val = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
            self._logger.info(
                "epoch %d  step %d  validation  %s", trainer.current_epoch, trainer.global_step, _format(val)
            )

    def on_test_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx=0):
        # test loops can be long (the VAE's importance-sampled NLL): ten lines with the rate
        total = int(trainer.num_test_batches[dataloader_idx])
        done = batch_idx + 1
        if not (self._enabled and trainer.is_global_zero) or done % max(1, total // 10) and done not in (1, total):
            return
        elapsed = time.perf_counter() - self._t0
        eta = f", ETA {elapsed / done * (total - done):.0f} s" if done < total else ""
        self._logger.info("test batch %d/%d  %.1f s%s", done, total, elapsed, eta)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = time.perf_counter()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self._logger.info(
                "training stopped at step %d after %.1f s",
                trainer.global_step,
                time.perf_counter() - self._t0,
            )


class TerminalProgressBar(RichProgressBar):
    """The rich bar, plus LineProgressBar's lines written to the run's log file only."""

    def __init__(self, every_n_steps: int = 50):
        super().__init__()
        self.lines = LineProgressBar(every_n_steps, logger=file_log)

    def get_metrics(self, trainer, pl_module) -> dict:
        # short names, three figures: the bar stays within an 80-column terminal
        metrics = super().get_metrics(trainer, pl_module)
        return {
            k.split("/")[-1]: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in metrics.items() if k != "v_num"
        }

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        self.lines.on_train_start(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        self.lines.on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        self.lines.on_validation_end(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        super().on_train_end(trainer, pl_module)
        self.lines.on_train_end(trainer, pl_module)


def progress_bar(every_n_steps: int = 50) -> ProgressBar:
    """A rich bar when stdout is a terminal (its lines still in genkit.log), else a LineProgressBar."""
    return TerminalProgressBar(every_n_steps) if sys.stdout.isatty() else LineProgressBar(every_n_steps)
