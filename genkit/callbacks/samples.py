"""Writes what the model generates from fixed noise at every validation and at the end of training.

The data module writes them (genkit.data.base): images as a grid PNG in <run_dir>/samples/,
token ids decoded to a .txt file. A conditional model draws every class (one row each).
"""

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only

from genkit.models.base import sample_from


class SampleWriter(L.Callback):
    """n images as a grid, or n_text texts (texts are read, not glanced at: a few suffice)."""

    def __init__(self, dirpath: str, n: int = 64, n_text: int = 4, seed: int = 0, options: dict | None = None):
        self.dirpath = Path(dirpath)
        self.n, self.n_text, self.seed = n, n_text, seed
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
        return datamodule.write_samples(out, self.dirpath / f"step_{trainer.global_step:07d}", inputs)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.write(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.write(trainer, pl_module)
