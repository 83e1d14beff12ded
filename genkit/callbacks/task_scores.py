"""Task scores at every validation of a prompt -> completion run (data=pairs): exact match, and
accuracy / macro F1 for a label task or ROUGE-L / chrF for free text, logged as `val/<metric>`
so that best.ckpt and early stopping can rank by them (`model.rank_by=val/macro_f1
model.rank_mode=max`). Data that is not a task (task_records is empty) is left alone."""

import lightning as L

from genkit.errors import GenkitError
from genkit.metrics.text_tasks import LABEL_CHOICES, task_scores


class TaskScores(L.Callback):
    def __init__(self, max_records: int | None = 500, choose_labels: str = "likelihood"):
        """max_records: this many validation records, evenly spaced, are scored (all: null); a label
        task scores every label for each (45 labels x 500 records: ~20 s on 2 CPU cores for a
        4-layer, 128-wide GPT), a text task generates a completion for each."""
        if max_records is not None and (not isinstance(max_records, int) or max_records < 1):
            raise GenkitError(
                f"callbacks.task_scores.max_records={max_records!r} must be a whole number of at least 1, or null "
                f"(every validation record)."
            )
        if choose_labels not in LABEL_CHOICES:
            raise GenkitError(
                f"callbacks.task_scores.choose_labels={choose_labels!r}: choose one of {', '.join(LABEL_CHOICES)}."
            )
        self.max_records, self.choose_labels = max_records, choose_labels

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        if trainer.sanity_checking or datamodule is None or not datamodule.task_records("val"):
            return
        scores, _, _ = task_scores(
            pl_module, datamodule, "val", choose_labels=self.choose_labels, max_records=self.max_records
        )
        pl_module.log_dict({k: float(v) for k, v in scores.items()}, prog_bar=False, sync_dist=True)
