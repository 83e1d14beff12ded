"""Instantiating a run's parts from its config: the one place shared by train, sample and eval."""

import logging
from dataclasses import dataclass

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from genkit.callbacks.checkpoint import ConfigInCheckpoint
from genkit.checkpoints import AtomicCheckpointIO

log = logging.getLogger(__name__)

# keys of the trainer config that genkit handles itself rather than passing to lightning.Trainer
GENKIT_TRAINER_KEYS = ("compile",)


@dataclass
class Parts:
    datamodule: L.LightningDataModule
    model: L.LightningModule
    trainer: L.Trainer | None = None


def build_datamodule(cfg: DictConfig) -> L.LightningDataModule:
    return instantiate(cfg.data, _convert_="partial")


def build_model(cfg: DictConfig) -> L.LightningModule:
    return instantiate(cfg.model, _convert_="partial")


def _instantiate_group(group: DictConfig | None) -> list:
    """Instantiate every entry of a dict of `_target_` nodes, skipping the ones set to null."""
    if not group:
        return []
    return [instantiate(node, _convert_="partial") for node in group.values() if node is not None]


def build_trainer(cfg: DictConfig, **overrides) -> L.Trainer:
    callbacks = [*_instantiate_group(cfg.get("callbacks")), ConfigInCheckpoint(cfg)]
    loggers = _instantiate_group(cfg.get("logger"))
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    for key in GENKIT_TRAINER_KEYS:
        trainer_cfg.pop(key, None)
    return instantiate(
        trainer_cfg,
        callbacks=callbacks,
        logger=loggers or False,
        plugins=[AtomicCheckpointIO()],
        _convert_="partial",
        **overrides,
    )


def build(cfg: DictConfig, *, with_trainer: bool = True) -> Parts:
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build_datamodule(cfg)
    model = build_model(cfg)
    trainer = build_trainer(cfg) if with_trainer else None
    return Parts(datamodule, model, trainer)
