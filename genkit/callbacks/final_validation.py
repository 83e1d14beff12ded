"""Every run that validates ends with a validation of its final weights, inside Trainer.fit.

A run that stops between two validations (max_steps mid-epoch, or a last epoch that is not a
validation epoch) would otherwise end without one. Run after fit (trainer.validate), that
validation would be seen by nothing that ranks or stops runs: best.ckpt, early stopping and
last.ckpt's record of both skip validations outside fit. So on a run's last training batch this
callback asks Lightning to stop there, which makes it validate at that step (Lightning validates
whenever a stop is asked for), with every callback watching as at any other validation.

It costs no more than the validation it replaces: `genkit train` ran the same one after fit.
"""

import copy
from typing import Any

import lightning as L

from genkit.callbacks.checkpoint import rng_state, set_rng_state
from genkit.callbacks.lightning_private import batches_done_this_epoch


def is_last_batch(trainer: L.Trainer) -> bool:
    """Whether the batch that just ended is the run's last: max_steps reached, or the last batch of
    the last epoch."""
    if 0 < trainer.max_steps <= trainer.global_step:
        return True
    last_epoch = trainer.max_epochs is not None and 0 < trainer.max_epochs <= trainer.current_epoch + 1
    # batches of this epoch, this one included (Lightning counts it before on_train_batch_end)
    done = batches_done_this_epoch(trainer)
    return last_epoch and done >= trainer.num_training_batches


class ValidateAtTheEnd(L.Callback):
    """Asks for a validation after the run's last batch, and keeps it out of what a resumed run sees.

    A run stopped by max_steps keeps, in the checkpoints written after that step (last.ckpt again,
    best.ckpt), the state last.ckpt had at the step's end: a resumed run continues after the step,
    its validation done, and draws the numbers an uninterrupted run would (the final validation
    draws from the random generators, which are then put back). With Lightning's own loop state at
    the end of a validation it did not schedule, a resumed run logged one step behind."""

    def __init__(self):
        # a run stopped by max_steps: its step, and its loops and generators at the step's end
        self._step = -1
        self._loops: dict | None = None
        self._rng: dict | None = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        if not (trainer.enable_validation and is_last_batch(trainer)):
            return
        if 0 < trainer.max_steps <= trainer.global_step:
            self._step, self._loops = trainer.global_step, copy.deepcopy(trainer.fit_loop.state_dict())
            self._rng = rng_state()  # before the validation's loader draws its seed
        trainer.should_stop = True
        every = trainer.check_val_every_n_epoch
        if every and (trainer.current_epoch + 1) % every:
            # not a validation epoch: validate all the same, as there is no later one to wait for
            trainer.check_val_every_n_epoch = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._rng is not None:
            set_rng_state(self._rng)
            self._rng = None

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self._loops is not None and checkpoint.get("global_step") == self._step and "loops" in checkpoint:
            checkpoint["loops"]["fit_loop"] = copy.deepcopy(self._loops)
