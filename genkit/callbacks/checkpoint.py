"""Checkpoints every N steps, the newest `keep` of them, plus `last.ckpt` whenever training stops."""

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf


class RunCheckpoint(ModelCheckpoint):
    def __init__(self, dirpath: str, every_n_train_steps: int = 1000, keep: int = 3):
        super().__init__(
            dirpath=dirpath,
            filename="step_{step:07d}",
            auto_insert_metric_name=False,
            every_n_train_steps=every_n_train_steps,
            # "newest k" = top k by step; keep=-1 keeps every checkpoint
            monitor="step",
            mode="max",
            save_top_k=keep,
            save_last=True,
            # a resumed run overwrites its own last.ckpt instead of writing last-v1.ckpt
            enable_version_counter=False,
        )

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning only writes last.ckpt here if no checkpoint was saved at all; a run that
        # stops between two intervals must still leave its final state in last.ckpt.
        if self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class ConfigInCheckpoint(L.Callback):
    """Stores the run's resolved config in every checkpoint, so a checkpoint alone can be sampled."""

    def __init__(self, cfg: DictConfig):
        self.config = OmegaConf.to_container(cfg, resolve=True)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]):
        from genkit import __version__

        checkpoint["genkit"] = {"version": __version__, "config": self.config}
