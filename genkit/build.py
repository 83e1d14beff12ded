"""Instantiating a run's parts from its config: the one place shared by train, sample and eval."""

import logging
from dataclasses import dataclass

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from genkit.callbacks.checkpoint import ConfigInCheckpoint, RNGStateInCheckpoint
from genkit.callbacks.guards import StopOnNonFiniteLoss
from genkit.callbacks.preemption import SaveOnPreemption
from genkit.checkpoints import AtomicCheckpointIO
from genkit.csv_logger import ForgetRedoneSteps

log = logging.getLogger(__name__)

# keys of the trainer config that genkit handles itself rather than passing to lightning.Trainer
GENKIT_TRAINER_KEYS = ("compile", "matmul_precision", "channels_last")


@dataclass
class Parts:
    datamodule: L.LightningDataModule
    model: L.LightningModule
    trainer: L.Trainer | None = None


def build_datamodule(cfg: DictConfig) -> L.LightningDataModule:
    return instantiate(cfg.data, _convert_="partial")


def uses_cuda(cfg: DictConfig) -> bool:
    accelerator = cfg.get("trainer", {}).get("accelerator", "auto")
    return torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda")


def build_model(cfg: DictConfig) -> L.LightningModule:
    model = instantiate(cfg.model, _convert_="partial")
    trainer_cfg = cfg.get("trainer") or {}
    if uses_cuda(cfg):
        # TF32 tensor cores for fp32 matmuls; NHWC memory for the conv nets (cuDNN's fast layout)
        torch.set_float32_matmul_precision(trainer_cfg.get("matmul_precision", "high"))
        if trainer_cfg.get("channels_last", True):
            model = model.to(memory_format=torch.channels_last)
    if trainer_cfg.get("compile"):
        # in place: checkpoints keep the uncompiled names (no `_orig_mod.` prefixes)
        model.compile_networks()
    return model


def _instantiate_group(group: DictConfig | None) -> list:
    """Instantiate every entry of a dict of `_target_` nodes, skipping the ones set to null."""
    if not group:
        return []
    return [instantiate(node, _convert_="partial") for node in group.values() if node is not None]


def build_trainer(
    cfg: DictConfig, *, model: L.LightningModule | None = None, callbacks: list | None = None, logger=None, **overrides
) -> L.Trainer:
    """The configured Trainer; `callbacks` and `logger` replace the configured ones (benchmarks)."""
    if callbacks is None:
        callbacks = training_callbacks(cfg)
    if logger is None:
        logger = _instantiate_group(cfg.get("logger")) or False
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    for key in GENKIT_TRAINER_KEYS:
        trainer_cfg.pop(key, None)
    trainer_cfg.update(overrides)
    if getattr(model, "ddp_find_unused_parameters", False) and trainer_cfg.get("strategy") == "ddp":
        trainer_cfg["strategy"] = "ddp_find_unused_parameters_true"
    return instantiate(
        trainer_cfg, callbacks=callbacks, logger=logger, plugins=[AtomicCheckpointIO()], _convert_="partial"
    )


def training_callbacks(cfg: DictConfig) -> list:
    # always on: a checkpoint must carry its config and RNG state, and a NaN must never be saved
    always = [
        ConfigInCheckpoint(cfg),
        RNGStateInCheckpoint(),
        StopOnNonFiniteLoss(),
        SaveOnPreemption(),
        ForgetRedoneSteps(),
    ]
    callbacks = [*_instantiate_group(cfg.get("callbacks")), *always]
    if cfg.get("optuna"):  # a trial of genkit's Optuna sweeper: report to its study, maybe stop early
        from genkit.callbacks.pruning import OptunaPruning

        callbacks.append(OptunaPruning(**cfg.optuna, monitor=cfg.optimized_metric))
    return callbacks


def build(cfg: DictConfig, *, with_trainer: bool = True) -> Parts:
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build_datamodule(cfg)
    model = build_model(cfg)
    trainer = build_trainer(cfg, model=model) if with_trainer else None
    return Parts(datamodule, model, trainer)
