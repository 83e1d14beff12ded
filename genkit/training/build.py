"""Instantiating a run's parts from its config: the one place shared by train, sample, eval and bench.

It also decides what the config leaves to genkit: the device and precision (genkit.runtime),
gradient accumulation (from data.max_device_batch), and what DDP must know of the model.
"""

import inspect
import logging
import math
from dataclasses import dataclass

import lightning as L
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from genkit.callbacks.checkpoint import ConfigInCheckpoint, RNGStateInCheckpoint, RunCheckpoint
from genkit.callbacks.final_validation import ValidateAtTheEnd
from genkit.callbacks.guards import StopOnNonFiniteLoss
from genkit.callbacks.logs import ForgetRedoneSteps
from genkit.callbacks.preemption import SaveOnPreemption
from genkit.callbacks.progress import progress_bar
from genkit.checkpoints.files import AtomicCheckpointIO
from genkit.checkpoints.starting_weights import load_starting_weights, starting_checkpoint
from genkit.data.base import GenkitDataModule
from genkit.errors import GenkitError, first_line
from genkit.models.base import GenerativeModel
from genkit.options import whole_number
from genkit.runs.csv_logger import RunCSVLogger
from genkit.runtime import precision_for, uses_cuda, why_precision
from genkit.training.finetune import apply_finetune
from genkit.training.run_values import check_run_values

log = logging.getLogger("genkit")

# keys of the trainer config that genkit handles itself rather than passing to lightning.Trainer
GENKIT_TRAINER_KEYS = ("compile", "matmul_precision", "channels_last")


@dataclass
class Parts:
    datamodule: GenkitDataModule
    model: GenerativeModel
    trainer: L.Trainer | None = None


def _contract_error(kind: str, target: str, base: type) -> GenkitError:
    return GenkitError(
        f"{kind}._target_={target} is not a {base.__module__}.{base.__name__}; genkit can only train, sample "
        f"and evaluate {kind}s that follow that contract. Subclass it (docs/add-your-own-family.md)."
    )


def build_datamodule(cfg: DictConfig) -> GenkitDataModule:
    target_class(cfg, "data", GenkitDataModule)  # the contract, checked before anything is built
    return instantiate(cfg.data, _convert_="partial")


def build_model(cfg: DictConfig, *, report: bool = True) -> GenerativeModel:
    """The model, started from model.init_from's weights and set up for finetune.* when asked;
    `report` logs what trains (a training run does, a loaded checkpoint does not)."""
    family = target_class(cfg, "model", GenerativeModel)  # the contract, checked before anything is built
    # model.init_from / init_strict belong to genkit, not to the family's constructor, when they
    # name a genkit run (GPT's constructor takes init_from for Hugging Face GPT-2 weights itself)
    model_cfg = OmegaConf.create(OmegaConf.to_container(cfg.model, resolve=True))
    strict = model_cfg.pop("init_strict", True)
    source = starting_checkpoint(model_cfg.get("init_from"))
    if source is not None or model_cfg.get("init_from") is None:
        model_cfg.pop("init_from", None)
    elif "init_from" not in inspect.signature(family).parameters:
        raise GenkitError(
            f"model.init_from={model_cfg.init_from} is not a genkit run directory or .ckpt file, and "
            f"{family.__name__} starts only from genkit runs (GPT also takes Hugging Face GPT-2 weights). Pass "
            f"the directory of a run of this family, or one of its checkpoints."
        )
    model = instantiate(model_cfg, _convert_="partial")
    if source is not None:
        load_starting_weights(model, source, strict)
    # after the starting weights: LoRA renames the layers it adapts (x.weight -> x.base_layer.weight)
    apply_finetune(model, cfg.get("finetune"), report=report)
    trainer_cfg = cfg.get("trainer") or {}
    if uses_cuda(trainer_cfg.get("accelerator")):
        # TF32 tensor cores for fp32 matmuls; NHWC memory for the conv nets (cuDNN's fast layout)
        torch.set_float32_matmul_precision(trainer_cfg.get("matmul_precision", "high"))
        if trainer_cfg.get("channels_last", True):
            model = model.to(memory_format=torch.channels_last)
    if trainer_cfg.get("compile"):
        # in place: checkpoints keep the uncompiled names (no `_orig_mod.` prefixes)
        model.compile_networks()
    return model


def target_class(cfg: DictConfig, kind: str, base: type) -> type:
    """The class a `model` or `data` config names, checked against its contract before it is built."""
    target = cfg[kind]._target_
    try:
        cls = get_class(target)
    except Exception as err:  # ImportError, AttributeError, ValueError: all mean "no such class"
        raise GenkitError(
            f"{kind}._target_={target} cannot be imported ({first_line(err, 160)}). "
            f"Check the name; a family or data set of your own must be importable (its folder on PYTHONPATH)."
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise _contract_error(kind, target, base)
    return cls


# run options that Lightning or the data modules would otherwise reject deep inside (or not at all):
# a signature says which arguments exist, not which values they take
WHOLE_NUMBERS = {"data.batch_size": 1, "data.eval_batch_size": 1, "trainer.max_epochs": -1, "trainer.max_steps": -1}


# keys of `_target_` nodes that genkit reads and removes before building the class: the trainer's
# (build_trainer) and the model's starting weights (build_model), which no signature lists
GENKIT_KEYS = {"trainer": GENKIT_TRAINER_KEYS, "model": ("init_from", "init_strict")}


def check_run_options(cfg: DictConfig) -> None:
    check_run_values(cfg, GENKIT_KEYS)  # sizes, learning rates, every component's arguments
    for key, low in WHOLE_NUMBERS.items():
        value = OmegaConf.select(cfg, key)
        rule = whole_number(low)
        if value is not None and not rule.test(value):
            raise GenkitError(f"{key}={value!r} must be {rule.words}.")


def check_accelerator(cfg: DictConfig) -> None:
    """A GPU named in trainer.accelerator that this machine lacks: one paragraph, before anything
    is built (Lightning stops with a traceback)."""
    accelerator = OmegaConf.select(cfg, "trainer.accelerator")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise GenkitError(
            "trainer.accelerator=mps (trainer=mps) needs an Apple GPU with PyTorch's Metal backend, and this "
            "machine has none (torch.backends.mps.is_available() is False). Use trainer=cpu here, or trainer=gpu "
            "on a machine with a CUDA GPU."
        )


def scalar_metrics(trainer: L.Trainer) -> dict[str, float]:
    """The trainer's logged metrics that are single numbers, as floats."""
    return {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}


def check_modality(cfg: DictConfig) -> None:
    """A model trains only on data of its modality: say so before building either."""
    model = target_class(cfg, "model", GenerativeModel)
    data = target_class(cfg, "data", GenkitDataModule)
    if model.modality != data.modality:
        raise GenkitError(
            f"model {cfg.model._target_} generates {model.modality} but data {cfg.data.get('name')} holds "
            f"{data.modality}; pick a data set of {model.modality} (or a model of {data.modality})."
        )


def _instantiate_group(group: DictConfig | None) -> list:
    """Instantiate every entry of a dict of `_target_` nodes, skipping the ones set to null."""
    if not group:
        return []
    return [instantiate(node, _convert_="partial") for node in group.values() if node is not None]


def accumulation_steps(cfg: DictConfig, world: int, configured: int = 1) -> int:
    """Gradient-accumulation steps so that no process holds more than data.max_device_batch
    examples at once; data.batch_size stays the global batch."""
    global_batch, max_device_batch = cfg.data.batch_size, cfg.data.get("max_device_batch")
    if global_batch % world:
        raise GenkitError(
            f"The global batch size {global_batch} does not split evenly over {world} processes; "
            f"choose data.batch_size as a multiple of {world}."
        )
    per_process = global_batch // world
    steps = max(configured, math.ceil(per_process / max_device_batch) if max_device_batch else 1)
    if per_process % steps:
        raise GenkitError(
            f"A per-process batch of {per_process} does not split into {steps} equal accumulation steps"
            f"{f' of at most data.max_device_batch={max_device_batch}' if max_device_batch else ''}; "
            f"choose sizes that divide evenly."
        )
    return steps


def build_trainer(
    cfg: DictConfig,
    *,
    model: GenerativeModel,
    callbacks: list | None = None,
    logger=None,
    training: bool = True,
    **overrides,
) -> L.Trainer:
    """The configured Trainer; `callbacks` and `logger` replace the configured ones (benchmarks, eval).
    A trainer that does not train (`training=False`) takes no gradient accumulation."""
    if callbacks is None:
        callbacks = training_callbacks(cfg)
    if logger is None:
        logger = run_loggers(cfg)
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    for key in GENKIT_TRAINER_KEYS:
        trainer_cfg.pop(key, None)
    trainer_cfg.update(overrides)
    if model.ddp_find_unused_parameters and trainer_cfg.get("strategy") == "ddp":
        trainer_cfg["strategy"] = "ddp_find_unused_parameters_true"
    trainer = instantiate(
        trainer_cfg, callbacks=callbacks, logger=logger, plugins=[AtomicCheckpointIO()], _convert_="partial"
    )
    if not training:
        return trainer
    log.info("Precision %s %s", trainer.precision, precision_reason(cfg))
    steps = accumulation_steps(cfg, trainer.world_size, trainer.accumulate_grad_batches)
    if steps > 1 and not model.automatic_optimization:
        raise GenkitError(
            f"{type(model).__name__} steps its optimizers itself and cannot accumulate gradients "
            f"({steps} steps asked for): raise data.max_device_batch to {cfg.data.batch_size // trainer.world_size} "
            f"or lower data.batch_size."
        )
    trainer.accumulate_grad_batches = steps
    return trainer


def precision_reason(cfg: DictConfig) -> str:
    """Why the run trains in its precision: genkit's choice (runtime.precision_for) or the config's."""
    chosen = OmegaConf.to_container(cfg.trainer, resolve=False).get("precision")
    if isinstance(chosen, str) and "auto_precision" in chosen:
        return f"(genkit's choice): {why_precision(cfg.trainer.get('accelerator'))}"
    return f"(trainer.precision={chosen}, as configured)"


def run_loggers(cfg: DictConfig) -> list:
    """The configured loggers (logger=tensorboard, wandb, mlflow, or several: logger=[tensorboard,wandb]),
    always with genkit's own record, <run_dir>/metrics.csv, which curves.png, `genkit runs` and
    `genkit plot` read: other loggers add to it, never replace it."""
    loggers = _instantiate_group(cfg.get("logger"))
    if not any(isinstance(one, RunCSVLogger) for one in loggers):
        loggers.insert(0, RunCSVLogger(save_dir=cfg.paths.output_dir))
    return loggers


def evaluation_trainer(cfg: DictConfig, model: GenerativeModel, precision: str | None = None) -> L.Trainer:
    """A Trainer for the test loop of one model on one device (genkit eval): the whole test split,
    in `precision` (default: genkit's choice for this device)."""
    return build_trainer(
        cfg,
        model=model,
        callbacks=[progress_bar()],
        logger=False,
        training=False,
        accelerator="auto",
        devices=1,
        num_nodes=1,
        strategy="auto",
        precision=precision or precision_for("auto"),
        limit_test_batches=None,
        enable_checkpointing=False,
        enable_model_summary=False,
    )


def training_callbacks(cfg: DictConfig) -> list:
    # always on: a checkpoint must carry its config and RNG state, and a NaN must never be saved
    always = [
        ConfigInCheckpoint(cfg),
        RNGStateInCheckpoint(),
        StopOnNonFiniteLoss(),
        SaveOnPreemption(),
        ForgetRedoneSteps(),
        ValidateAtTheEnd(),
    ]
    callbacks = [*_instantiate_group(cfg.get("callbacks")), *always]
    # RunCheckpoint last (Lightning keeps checkpoint callbacks' order): the last.ckpt it writes after
    # the final validation holds best.ckpt's verdict on it
    callbacks.sort(key=lambda callback: isinstance(callback, RunCheckpoint))
    if cfg.get("optuna"):  # a trial of genkit's Optuna sweeper: report to its study, maybe stop early
        from genkit.training.pruning import OptunaPruning

        callbacks.append(OptunaPruning(**cfg.optuna, monitor=cfg.optimized_metric))
    return callbacks


def build(cfg: DictConfig, *, with_trainer: bool = True) -> Parts:
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
    check_run_options(cfg)
    check_accelerator(cfg)
    check_modality(cfg)
    datamodule = build_datamodule(cfg)
    model = build_model(cfg)
    trainer = build_trainer(cfg, model=model) if with_trainer else None
    return Parts(datamodule, model, trainer)
