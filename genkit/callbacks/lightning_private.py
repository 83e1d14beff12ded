"""Lightning's private members that genkit's callbacks rely on, in one place, each with why no
public hook does the job. Lightning is pinned exactly (pyproject.toml), and
tests/unit/callbacks/test_lightning_private.py fails on a Lightning that renames them or changes
their signatures, before a run would.

- ModelCheckpoint writes last.ckpt only on its own schedule; genkit writes it also at the step a
  run stops (max_steps, SIGTERM, Ctrl-C) and again after the final validation, through
  `_save_last_checkpoint` with `_monitor_candidates`, and remembers what it wrote in
  `_last_global_step_saved` (the attribute ModelCheckpoint's own schedule reads, so the two never
  write the same step twice).
- `ModelCheckpoint._should_skip_saving_checkpoint` and `EarlyStopping._should_skip_check` /
  `_run_early_stopping_check` are overridden (genkit.callbacks.checkpoint, early_stopping): the
  public hooks call them, and they are where a callback with nothing to watch (a family without a
  validation metric) stands aside and where early stopping's verdict is logged.
- The fit loop's count of batches processed in this epoch tells the run's last batch
  (genkit.callbacks.final_validation); the Trainer exposes no such count.
"""

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

# overridden private methods: class -> names (checked against Lightning's signatures by the test)
OVERRIDDEN = {
    ModelCheckpoint: ("_should_skip_saving_checkpoint",),
    EarlyStopping: ("_should_skip_check", "_run_early_stopping_check"),
}


def save_last_checkpoint(callback: ModelCheckpoint, trainer: L.Trainer) -> None:
    """Write last.ckpt for the trainer's current step, and remember the step."""
    callback._save_last_checkpoint(trainer, callback._monitor_candidates(trainer))
    callback._last_global_step_saved = trainer.global_step


def last_step_saved(callback: ModelCheckpoint) -> int:
    """The step of the newest checkpoint the callback wrote (0 before any)."""
    return callback._last_global_step_saved


def batches_done_this_epoch(trainer: L.Trainer) -> int:
    """Training batches of the current epoch so far, the one ending included."""
    return trainer.fit_loop.epoch_loop.batch_progress.current.processed
