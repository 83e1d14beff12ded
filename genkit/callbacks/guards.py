"""Stops training on a non-finite loss before a checkpoint can store the damaged weights."""

import math

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
                raise NonFiniteLoss(
                    f"{name} became {float(value)} at step {trainer.global_step}; training stopped and the last "
                    f"good checkpoint is kept in {trainer.default_root_dir}/checkpoints. Lower the learning rate, "
                    f"set trainer.gradient_clip_val, or use 32-bit precision, then resume with the same command."
                )
