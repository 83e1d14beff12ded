"""Writes what the model generates from fixed noise at every validation and at the end of training.

The data module writes them (genkit.data.base): images as a grid PNG in <run_dir>/samples/,
token ids decoded to a .txt file. A conditional model draws every class (one row each). The same
grid or texts go to the dashboards of the run's loggers (TensorBoard, wandb, MLflow) at their step.
"""

import logging
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only

from genkit.errors import GenkitError
from genkit.models.base import sample_from

log = logging.getLogger("genkit")


class SampleWriter(L.Callback):
    """n images as a grid, or n_text texts (texts are read, not glanced at: a few suffice)."""

    def __init__(
        self,
        dirpath: str,
        n: int = 64,
        n_text: int = 4,
        seed: int = 0,
        options: dict | None = None,
        first_at_step: int | None = None,
    ):
        if first_at_step is not None and (not isinstance(first_at_step, int) or isinstance(first_at_step, bool)
                                          or first_at_step < 1):  # fmt: skip
            raise GenkitError(
                f"callbacks.samples.first_at_step={first_at_step!r} must be a whole number of at least 1 (the step "
                f"of the first sample grid, before the first validation), or null (no early grid)."
            )
        self.dirpath = Path(dirpath)
        self.n, self.n_text, self.seed = n, n_text, seed
        # an early look, before the first validation (which may be an epoch away)
        self.first_at_step = first_at_step
        self.options = dict(options or {})
        self.last_step: int | None = None

    @rank_zero_only
    def write(self, trainer: L.Trainer, pl_module: L.LightningModule) -> Path | None:
        if trainer.sanity_checking or self.last_step == trainer.global_step:
            return None
        self.last_step = trainer.global_step
        datamodule = trainer.datamodule
        n = self.n_text if datamodule.modality == "text" else self.n
        was_training = pl_module.training
        pl_module.eval()
        try:
            generator = torch.Generator(device=pl_module.device).manual_seed(self.seed)
            out, inputs = sample_from(pl_module, datamodule, n, generator, self.options)
        finally:
            pl_module.train(was_training)
        path = datamodule.write_samples(out, self.dirpath / f"step_{trainer.global_step:07d}", inputs)
        texts = datamodule.samples_as_text(out) if datamodule.modality == "text" else None
        to_dashboards(trainer.loggers, path, texts, trainer.global_step)
        return path

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.write(trainer, pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        if self.first_at_step and trainer.global_step == self.first_at_step:
            path = self.write(trainer, pl_module)
            if path is not None:
                log.info("First samples: %s", path)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.write(trainer, pl_module)


def to_dashboards(loggers, path: Path, texts: list[str] | None, step: int) -> None:
    """A sample grid (or texts) in TensorBoard (add_image / add_text), wandb (an image, or a table
    of texts) and MLflow (the file, among the run's artifacts); the CSV log keeps none: the files
    are in the run directory."""
    from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger, WandbLogger

    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            if texts is None:
                from torchvision.io import ImageReadMode, read_image

                grid = read_image(str(path), mode=ImageReadMode.RGB)  # (3, H, W) uint8
                logger.experiment.add_image("samples", grid, global_step=step)
            else:
                # markdown: each sample as a code block keeps its line breaks
                body = "\n\n".join(f"sample {i}:\n\n    " + t.replace("\n", "\n    ") for i, t in enumerate(texts))
                logger.experiment.add_text("samples", body, global_step=step)
            logger.experiment.flush()
        elif isinstance(logger, WandbLogger):
            if texts is None:
                logger.log_image(key="samples", images=[str(path)], step=step)
            else:
                logger.log_text(key="samples", columns=["sample"], data=[[t] for t in texts], step=step)
        elif isinstance(logger, MLFlowLogger):
            # the grid's .png or the texts' .txt, named by its step (step_0000200.png)
            logger.experiment.log_artifact(logger.run_id, str(path), artifact_path="samples")
