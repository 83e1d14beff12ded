"""Task scores at every validation of a prompt -> completion run (data=pairs): exact match, and
accuracy / macro F1 for a label task or ROUGE-L / chrF for free text, logged as `val/<metric>`
so that best.ckpt and early stopping can rank by them (`model.rank_by=val/macro_f1
model.rank_mode=max`). Data that is not a task (task_records is empty) is left alone."""

import logging

import lightning as L

from genkit.errors import GenkitError
from genkit.metrics.label_scoring import AUTO, RULES
from genkit.metrics.text_tasks import LABEL_CHOICES, task_scores

log = logging.getLogger("genkit")


class TaskScores(L.Callback):
    def __init__(
        self,
        max_records: int | None = 500,
        choose_labels: str = "likelihood",
        label_scoring: str = AUTO,
        label_prior_strength: float | None = None,
    ):
        """max_records: this many validation records, evenly spaced, are scored (all: null); a label
        task scores every label for each (45 labels x 500 records: ~20 s on 2 CPU cores for a
        4-layer, 128-wide GPT), a text task generates a completion for each.

        label_scoring / label_prior_strength: as `genkit eval`'s (genkit.metrics.label_scoring);
        auto logs the scores of the rule with the best macro F1 on these records, the one eval
        would choose, so best.ckpt ranks by the score eval reports."""
        if max_records is not None and (not isinstance(max_records, int) or max_records < 1):
            raise GenkitError(
                f"callbacks.task_scores.max_records={max_records!r} must be a whole number of at least 1, or null "
                f"(every validation record)."
            )
        if choose_labels not in LABEL_CHOICES:
            raise GenkitError(
                f"callbacks.task_scores.choose_labels={choose_labels!r}: choose one of {', '.join(LABEL_CHOICES)}."
            )
        if label_scoring not in (AUTO, *RULES):
            raise GenkitError(
                f"callbacks.task_scores.label_scoring={label_scoring!r}: choose one of {', '.join((AUTO, *RULES))}."
            )
        if label_prior_strength is not None and (
            isinstance(label_prior_strength, bool)
            or not isinstance(label_prior_strength, int | float)
            or label_prior_strength < 0
        ):
            raise GenkitError(
                f"callbacks.task_scores.label_prior_strength={label_prior_strength!r} must be a number of at least 0, "
                f"or null (validation picks it)."
            )
        self.max_records, self.choose_labels = max_records, choose_labels
        self.label_scoring, self.label_prior_strength = label_scoring, label_prior_strength

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        if trainer.sanity_checking or datamodule is None or not datamodule.task_records("val"):
            return
        scores, _, _ = task_scores(
            pl_module, datamodule, "val", choose_labels=self.choose_labels, label_scoring=self.label_scoring,
            prior_strength=self.label_prior_strength, max_records=self.max_records,
        )  # fmt: skip
        if "val/label_scoring" in scores:
            log.info("validation: labels chosen by label_scoring=%s", scores["val/label_scoring"])
        numbers = {k: float(v) for k, v in scores.items() if isinstance(v, int | float)}
        pl_module.log_dict(numbers, prog_bar=False, sync_dist=True)
