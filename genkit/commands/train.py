"""`genkit train`: fit a model as its config says and return the final metrics."""

import contextlib
import logging
import shlex
import shutil
import time
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from genkit.checkpoints.files import (
    LAST,
    NotResumable,
    config_of,
    load_checkpoint,
    newest_training_state,
    resolve_checkpoint,
    training_step,
)
from genkit.checkpoints.safetensors_folder import is_safetensors_folder
from genkit.config_files import CONFIG_DIR
from genkit.errors import CheckpointError, GenkitError, Interrupted, first_line
from genkit.runs.lock import GUARD_FILE, lock_run_directory
from genkit.runs.plots import plot_curves
from genkit.runs.status import STATUS_FILE, write_status
from genkit.training.build import build, scalar_metrics
from genkit.training.config import user_config_args
from genkit.training.cpu_allocator import tune_cpu_allocator
from genkit.training.run_values import target_nodes

log = logging.getLogger("genkit")

# `genkit train` takes the whole training config (its groups and their keys), no options of its own
OPTIONS: dict = {}


class _Exceptions(L.Callback):
    """Remembers what stopped training (Lightning turns Ctrl-C into a bare exit)."""

    def __init__(self):
        self.seen: BaseException | None = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.seen = exception


def resume_command(cfg: DictConfig) -> str:
    """The command that continues this run in its own directory, as the user can paste it."""
    run_dir = Path(cfg.paths.output_dir)
    args = []
    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        args = [*user_config_args(hydra_cfg), *hydra_cfg.overrides.task]
    return shlex.join(["genkit", "train", *args, f"hydra.run.dir={run_dir}"])


def _stopped(cfg: DictConfig, trainer: L.Trainer, how: str, exit_code: int) -> Interrupted:
    last = Path(cfg.paths.output_dir) / "checkpoints" / LAST
    if last.is_file():
        saved = f"its state is saved in {last}. To resume, run: {resume_command(cfg)}"
    else:
        saved = "no checkpoint had been written, so nothing was saved; run the command again to start over"
    error = Interrupted(f"Training was stopped by {how} at step {trainer.global_step}; {saved}")
    error.exit_code = exit_code
    return error


class _LastValidation(L.Callback):
    """Remembers the step of the last validation, so train() knows whether to run a final one."""

    def __init__(self):
        self.step = -1

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.step = trainer.global_step


def resume_path(cfg: DictConfig) -> tuple[Path, str] | None:
    """The checkpoint this run resumes from, and the words of the log line that names it: in a run
    directory (`resume=<run dir>`, or this run's own when resume= is not given) the intact
    checkpoint of the highest global step, whichever file it is (newest_training_state); a file
    that `resume=` names, as given. None: a new run."""
    given = cfg.get("resume")
    if not given:
        run_dir = Path(cfg.paths.output_dir)
    else:
        path = Path(str(given)).expanduser()
        run_dir = path.parent if path.name == "checkpoints" else path
        if not (run_dir / "checkpoints").is_dir() or is_safetensors_folder(path):
            # a file (or a safetensors export, or a folder without checkpoints/): its own errors
            ckpt = resolve_checkpoint(path, cfg.paths.log_dir, "last" if path.is_dir() else None)
            return ckpt, f"global step {_resumable_step(ckpt, given)}"
    found = newest_training_state(run_dir)
    if found is None:
        if given:
            raise CheckpointError(
                f"resume={given} names a run directory without checkpoints ({run_dir / 'checkpoints'} holds no "
                f"{LAST} or step_*.ckpt); pass the directory of a run that saved one, or leave out resume= to "
                f"start a new run."
            )
        return None
    ckpt, step = found
    return ckpt, f"global step {step}, the newest intact checkpoint in {ckpt.parent}"


def _resumable_step(ckpt: Path, given) -> int:
    try:
        return training_step(ckpt)
    except NotResumable as err:
        if not err.weights_only:  # damaged or unreadable
            raise CheckpointError(
                f"Cannot resume from resume={given}: {err}. Pass resume=<its run directory> to resume from the "
                f"newest intact checkpoint there, or another checkpoint file."
            ) from None
        raise CheckpointError(
            f"resume={given} holds a model's weights without its training state (optimizer, learning-rate "
            f"schedule, step: an export of `genkit export` is such a file), so there is no run to resume from "
            f"it. To start a new run from these weights, pass model.init_from={given} instead of resume=; to go "
            f"on with a run, pass resume=<its run directory>."
        ) from None


def train(cfg: DictConfig) -> dict[str, float]:
    """Train (and optionally test) the configured model; returns the logged metrics as floats.

    The run directory records how the run is doing and how it ended (status.json, for `genkit
    runs`), and ends with curves.png however training stopped."""
    tune_cpu_allocator()
    parts = build(cfg)
    run_dir = Path(cfg.paths.output_dir)
    metric, mode = parts.model.checkpoint_metric or (None, None)
    main = parts.trainer.is_global_zero
    if main:
        family = type(parts.model).__name__
        write_status(run_dir, "running", run_name=cfg.get("run_name"), family=family, data=cfg.data.get("name"),
                     monitor=metric, mode=mode)  # fmt: skip
    status, reason = "failed", None
    try:
        metrics = _fit(cfg, parts)
        status = "finished"
        return metrics
    except Interrupted as err:
        status, reason = "stopped", str(err).split(";")[0]
        raise
    except BaseException as err:
        reason = first_line(err, 300)
        raise
    finally:
        if main:
            write_status(run_dir, status, ended=time.time(), reason=reason, step=parts.trainer.global_step)
            curves = _curves(run_dir, metric)
            grids = sorted((run_dir / "samples").glob("step_*"))
            if status == "finished" and (curves or grids):
                shown = [str(p) for p in (grids[-1:] + ([curves] if curves else []))]
                log.info("To look at: %s", "  ".join(shown))


def _curves(run_dir: Path, metric: str | None) -> Path | None:
    try:
        return plot_curves(run_dir, metric)
    except Exception as err:  # a chart must never cost a run its ending
        log.warning("curves.png was not drawn (%s: %s)", type(err).__name__, err)
        return None


def check_same_networks(cfg: DictConfig, ckpt: Path) -> None:
    """A resumed run rebuilds its model from this run's config: a checkpoint whose networks are
    other classes (a run of genkit's U-Net, the default denoiser until 2026-12-07) is refused in one
    paragraph that names the config group option to pass, not with load_state_dict's key lists."""
    stored = config_of(load_checkpoint(ckpt), ckpt)
    for where, node in target_nodes(stored.get("model"), "model"):
        ours = OmegaConf.select(cfg, f"{where}._target_")
        if ours is None or ours == node._target_:
            continue
        option = _group_option(where, node._target_)
        raise GenkitError(
            f"resume={ckpt} holds a model whose {where} is {node._target_}, and this run's config builds {ours}; "
            f"a run resumes with the networks it was trained with: "
            f"{f'pass {option}' if option else f'set {where} as that run had it'} (its .hydra/config.yaml says how "
            f"it was composed)."
        )


def _group_option(where: str, target: str) -> str | None:
    """The config group option that builds `target` at `where` (model/denoiser@model.net=unet)."""
    for path in sorted((CONFIG_DIR / "model").glob("*/*.yaml")):
        if f"_target_: {target}" in path.read_text(encoding="utf-8").splitlines():
            group = f"model/{path.parent.name}"
            placed = where.removeprefix("model.")
            at = "" if placed == path.parent.name else f"@{where}"
            return f"{group}{at}={path.stem}"
    return None


def _fit(cfg: DictConfig, parts) -> dict[str, float]:
    trainer = parts.trainer
    resume = resume_path(cfg)
    ckpt = None
    if resume is not None:
        ckpt, which = resume
        check_same_networks(cfg, ckpt)
        log.info("Resuming from %s (%s)", ckpt, which)
    last_validation, exceptions = _LastValidation(), _Exceptions()
    trainer.callbacks.extend([last_validation, exceptions])
    try:
        trainer.fit(parts.model, datamodule=parts.datamodule, ckpt_path=ckpt)
    except SIGTERMException:
        raise _stopped(cfg, trainer, "SIGTERM", 143) from None
    except SystemExit:
        # Lightning saves (genkit's RunCheckpoint.on_exception) and exits 1 on Ctrl-C
        if isinstance(exceptions.seen, KeyboardInterrupt):
            raise _stopped(cfg, trainer, "Ctrl-C (SIGINT)", 130) from None
        raise
    if trainer.is_global_zero:
        parts.datamodule.save_artifacts(Path(cfg.paths.output_dir))
    metrics = scalar_metrics(trainer)
    # A run validates its final weights inside fit (ValidateAtTheEnd), where best.ckpt and early
    # stopping see it. Only when Lightning refuses to stop there (min_epochs or min_steps not yet
    # reached when max_steps is) does it end without one: validate now, for the metrics alone.
    if last_validation.step != trainer.global_step and trainer.limit_val_batches != 0 and not trainer.interrupted:
        trainer.validate(parts.model, datamodule=parts.datamodule, verbose=False)
        metrics.update(scalar_metrics(trainer))
    if cfg.get("test"):
        trainer.test(parts.model, datamodule=parts.datamodule, verbose=False)
        metrics.update(scalar_metrics(trainer))
    log.info("Run directory: %s", cfg.paths.output_dir)
    return metrics


def _remove_if_empty(run_dir: Path, log_dir: str | Path) -> None:
    """A run that failed before writing anything but its config and log leaves no directory."""
    if not run_dir.is_dir():
        return
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    bookkeeping = ("genkit.log", STATUS_FILE, GUARD_FILE)
    if all(p.name in bookkeeping or ".hydra" in p.relative_to(run_dir).parts for p in files):
        shutil.rmtree(run_dir, ignore_errors=True)
        # and the folders made for it below the log folder (outputs/<run_name>), if nothing else is in them
        with contextlib.suppress(OSError, ValueError):
            for parent in run_dir.resolve().parents:
                parent.relative_to(Path(log_dir).resolve())  # ValueError above the log folder: stop
                parent.rmdir()  # only an empty folder; stops at the first that holds something


def train_job(cfg: DictConfig) -> float | None:
    """The Hydra job of `genkit train`: trains, and returns cfg.optimized_metric for sweepers."""
    # one writer per run directory (genkit.runs.lock); refused before anything is written or removed
    lock = lock_run_directory(cfg.paths.output_dir, cfg.get("wait", False))
    try:
        metrics = train(cfg)
    except Exception:
        lock.release()
        _remove_if_empty(Path(cfg.paths.output_dir), cfg.paths.log_dir)
        raise
    finally:
        lock.release()
    name = cfg.get("optimized_metric")
    if not name:
        return None
    if name not in metrics:
        raise GenkitError(
            f"optimized_metric={name!r} was not logged by this run; logged metrics: {', '.join(sorted(metrics))}."
        )
    return metrics[name]
