"""Writes what the model generates from fixed noise at every validation and at the end of training.

Images become an 8x8 PNG grid in <run_dir>/samples/; token ids (text models) are decoded by the
data module and written as a .txt file beside them.
"""

import inspect
import math
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from torchvision.utils import save_image


def save_grid(images: torch.Tensor, path: str | Path) -> Path:
    """Images (N, C, H, W) in [-1, 1] as a square-ish grid PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nrow = math.ceil(math.sqrt(len(images)))
    save_image(images.float().cpu(), path, nrow=nrow, normalize=True, value_range=(-1, 1), pad_value=1.0)
    return path


def write_text(samples: list[str], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(f"--- sample {i} ---\n{s}" for i, s in enumerate(samples)) + "\n")
    return path


def generate(model, datamodule, n: int, generator: torch.Generator, **options) -> torch.Tensor:
    """Call model.sample with the options its signature takes; a text prompt becomes prompt_ids."""
    accepted = inspect.signature(model.sample).parameters
    kwargs = {k: v for k, v in options.items() if k in accepted and v is not None}
    if "prompt_ids" in accepted:
        kwargs["prompt_ids"] = datamodule.prompt_ids(options.get("prompt") or "")
    if "images" in accepted and kwargs.get("mode", "prior") != "prior":
        kwargs["images"] = datamodule.sample_images(n)
    return model.sample(n, generator=generator, **kwargs)


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
        was_training = pl_module.training
        pl_module.eval()
        try:
            generator = torch.Generator(device=pl_module.device).manual_seed(self.seed)
            is_text = hasattr(trainer.datamodule, "decode_batch")
            n = self.n_text if is_text else self.n
            out = generate(pl_module, trainer.datamodule, n, generator, **self.options)
        finally:
            pl_module.train(was_training)
        stem = self.dirpath / f"step_{trainer.global_step:07d}"
        if out.is_floating_point():
            return save_grid(out, stem.with_suffix(".png"))
        return write_text(trainer.datamodule.decode_batch(out), stem.with_suffix(".txt"))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.write(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.write(trainer, pl_module)
