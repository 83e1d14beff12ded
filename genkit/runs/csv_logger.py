"""The CSV logger of genkit runs: <run_dir>/metrics.csv, kept across resumes. Every training run
writes it, whatever other loggers it has (genkit.training.build.run_loggers).

Lightning's CSVLogger deletes an existing metrics.csv when it starts, so a resumed run would lose
its history. This one appends, and drops the rows of the steps that a resumed run is about to
train again (those after the checkpoint it resumes from; see genkit.callbacks.logs).
"""

import csv
import os

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from genkit.atomic import atomic_path


class _AppendingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                self.metrics_keys = next(csv.reader(f), [])


class RunCSVLogger(CSVLogger):
    def __init__(self, save_dir: str, name: str = "", version: str | int = "", **kwargs):
        # name and version "": metrics.csv straight in save_dir (the run directory), not in
        # lightning_logs/version_N below it
        super().__init__(save_dir, name=name, version=version, **kwargs)

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment

    def forget_after(self, step: int) -> None:
        """Drop rows logged after `step`: a resumed run trains those steps again."""
        path = self.experiment.metrics_file_path
        if not os.path.isfile(path):
            return
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            fields, rows = reader.fieldnames or [], [r for r in reader if not r["step"] or int(r["step"]) <= step]
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
