"""Stops training on a non-finite loss before a checkpoint can store the damaged weights."""

import math
from pathlib import Path

import lightning as L

from genkit.errors import GenkitError


class NonFiniteLoss(GenkitError):
    pass


class StopOnNonFiniteLoss(L.Callback):
    """Raises as soon as a logged train/ metric is NaN or infinite.

    Lightning runs checkpoint callbacks after all others, so the step that produced the NaN is
    never saved: last.ckpt keeps the last good state.
    """

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int):
        for name, value in trainer.callback_metrics.items():
            if name.startswith("train/") and value.numel() == 1 and not math.isfinite(float(value)):
                last = Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"
                kept = (
                    f"the last good checkpoint is kept in {last}"
                    if last.is_file()
                    else "no checkpoint had been saved yet, so nothing is kept"
                )
                raise NonFiniteLoss(
                    f"{name} became {float(value)} at step {trainer.global_step}; training stopped and {kept}. "
                    f"Lower the learning rate, set trainer.gradient_clip_val, or use 32-bit precision, then "
                    f"{'resume with the same run directory' if last.is_file() else 'train again'}."
                )
