"""Writing checkpoints: atomically, every N steps (the newest `keep` of them), plus `last.ckpt`
whenever training stops, each carrying the run's config and random-number state."""

import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from genkit.callbacks.lightning_private import last_step_saved, save_last_checkpoint
from genkit.checkpoints.provenance import data_stamp
from genkit.data.base import file_keys_of

# exceptions that stop a healthy run: its state is worth saving (unlike a NaN or a crash)
INTERRUPTIONS = (SIGTERMException, KeyboardInterrupt)


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

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if trainer.is_global_zero and self.dirpath and Path(self.dirpath).is_dir():
            # what a write cut short by kill -9 left behind (AtomicCheckpointIO's temporary files)
            for stale in Path(self.dirpath).glob(".*.ckpt.*.tmp"):
                stale.unlink(missing_ok=True)

    def save_last_now(self, trainer: L.Trainer) -> None:
        """Write last.ckpt for the current step, unless it was just written."""
        if last_step_saved(self) != trainer.global_step:
            save_last_checkpoint(self, trainer)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args, **kwargs) -> None:
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
        # Save the final step here, not in on_train_end: by then Lightning has closed the epoch,
        # and a run resumed from that state would skip the rest of a half-trained epoch.
        if 0 < trainer.max_steps <= trainer.global_step:
            self.save_last_now(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        # A run's final validation comes after its final last.ckpt (written above, so that a crash
        # in it loses nothing): write last.ckpt again, with best.ckpt's and early stopping's
        # verdicts on it (RunCheckpoint runs after them), or a resumed run would compare its next
        # validations with an older best. ValidateAtTheEnd keeps its loops at the step's end.
        if trainer.should_stop and last_step_saved(self) == trainer.global_step:
            save_last_checkpoint(self, trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning only writes last.ckpt here if no checkpoint was saved at all; a run that
        # stops between two intervals must still leave its final state in last.ckpt.
        self.save_last_now(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # SIGTERM (preemption, scancel, kill) and Ctrl-C stop at a batch boundary: save there.
        # Errors (NaN loss, crashes) keep the last good checkpoint instead.
        if isinstance(exception, INTERRUPTIONS):
            self.save_last_now(trainer)


class ConfigInCheckpoint(L.Callback):
    """Stores the run's resolved config in every checkpoint, so a checkpoint alone can be sampled."""

    def __init__(self, cfg: DictConfig):
        self.config = OmegaConf.to_container(cfg, resolve=True)
        # this machine's signature of the data paths, so that sample and eval read them again only
        # from checkpoints written here (genkit.checkpoints.provenance)
        data = self.config.get("data") or {}
        self.data_stamp = data_stamp(data, file_keys_of(data))

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]):
        from genkit import __version__

        checkpoint["genkit"] = {"version": __version__, "config": self.config, "data_stamp": self.data_stamp}


def rng_state() -> dict[str, Any]:
    """This process's random generators (torch, numpy, Python's, CUDA's): plain values and
    tensors, so that checkpoints load with torch.load(weights_only=True)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached]
    state = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class RNGStateInCheckpoint(L.Callback):
    """Saves the random number generators with each checkpoint and restores them on resume, so a
    resumed run draws the same noise, dropout masks and windows as an uninterrupted one."""

    def state_dict(self) -> dict[str, Any]:
        return rng_state()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._to_restore = state_dict

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state = getattr(self, "_to_restore", None)
        if state is None:
            return
        if trainer.world_size > 1:
            # the checkpoint holds rank 0's generators; other ranks get their own stream
            torch.manual_seed(int(state["torch"][:8].sum().item()) + trainer.global_rank)
        else:
            set_rng_state(state)
        self._to_restore = None


class BestCheckpoint(ModelCheckpoint):
    """checkpoints/best.ckpt: the model at its best validation so far, ranked by the family's
    `checkpoint_metric` (GenerativeModel); nothing for a family that names none (the GAN)."""

    def __init__(self, dirpath: str):
        # the metric is the model's, known at setup; val/loss stands in until then
        super().__init__(
            dirpath=dirpath,
            filename="best",
            monitor="val/loss",
            mode="min",
            save_top_k=1,
            save_last=False,
            auto_insert_metric_name=False,
            enable_version_counter=False,
            # after every validation, also those every N steps within an epoch
            save_on_train_epoch_end=False,
        )
        self.active = True

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        metric = pl_module.checkpoint_metric
        self.active = metric is not None
        if self.active and (self.monitor, self.mode) != metric:
            self.monitor, self.mode = metric
            self.kth_value = torch.tensor(torch.inf if self.mode == "min" else -torch.inf)

    def _should_skip_saving_checkpoint(self, trainer: L.Trainer) -> bool:
        return not self.active or super()._should_skip_saving_checkpoint(trainer)
