"""A Hydra sweeper over a current Optuna (4.x): `genkit train -m hparams_search=<name>`.

Why genkit's own rather than hydra-optuna-sweeper: that plugin, even in its newest release, pins
optuna < 3 (optuna 2.10 from 2021, whose SQLite storage needs sqlalchemy < 2 and alembic
< 1.14), so installing it would hold back genkit's whole environment and miss five years of
Optuna (faster TPE, better pruners, ask-and-tell). The search space uses the same Hydra sweep
syntax as that plugin, so its configs carry over:

    params:
      model.optimizer.lr: tag(log, interval(1e-4, 1e-2))
      model.net.dropout: interval(0.0, 0.5)
      data.batch_size: choice(32, 64, 128)
      model.net.n_layer: range(2, 6)

Every trial is one Hydra job through the configured launcher (local, or SLURM with submitit),
so trials run in parallel with `n_jobs` > 1 on a cluster. Trials report their validation metric
to the study (stored in SQLite in the sweep directory, which every job can reach), and the
pruner stops bad trials early (genkit.training.pruning).
"""

import logging
import math
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("genkit")


def distribution(override: Override):
    """The Optuna distribution of one Hydra sweep override (choice, range, interval, tag(log, ...))."""
    import optuna.distributions as D

    sweep = override.value()
    if isinstance(sweep, ChoiceSweep):
        return D.CategoricalDistribution(list(sweep.list))
    if isinstance(sweep, RangeSweep):
        values = list(override.sweep_iterator())
        if all(isinstance(v, int) for v in values):
            return D.IntDistribution(values[0], values[-1], step=int(sweep.step))
        return D.FloatDistribution(values[0], values[-1], step=sweep.step)
    if isinstance(sweep, IntervalSweep):
        if "int" in sweep.tags:
            return D.IntDistribution(int(sweep.start), int(sweep.end), log="log" in sweep.tags)
        return D.FloatDistribution(sweep.start, sweep.end, log="log" in sweep.tags)
    raise ValueError(f"{override.input_line}: use choice(...), range(...) or interval(...) to define a search space")


def make_pruner(name: str | None, startup_trials: int = 3, warmup_steps: int = 0):
    """The pruner of a study; trials rebuild it from the same settings (Optuna does not store it)."""
    import optuna

    if not name:
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_steps)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    raise ValueError(f"pruner must be median, hyperband or null, got {name!r}")


class OptunaSweeper(Sweeper):
    def __init__(
        self,
        direction: str = "minimize",
        n_trials: int = 20,
        n_jobs: int = 1,
        sampler: str = "tpe",
        seed: int | None = None,
        pruner: str | None = "median",
        pruner_startup_trials: int = 3,
        pruner_warmup_steps: int = 0,
        storage: str | None = None,
        study_name: str | None = None,
        params: dict[str, str] | None = None,
    ):
        self.direction, self.n_trials, self.n_jobs = direction, n_trials, n_jobs
        self.sampler_name, self.seed = sampler, seed
        self.pruner_name, self.pruner_startup_trials, self.pruner_warmup_steps = (
            pruner,
            pruner_startup_trials,
            pruner_warmup_steps,
        )
        self.storage, self.study_name = storage, study_name
        self.params = dict(params or {})

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def _sampler(self):
        import optuna

        samplers = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
        return samplers[self.sampler_name](seed=self.seed)

    def _pruner_settings(self) -> tuple:
        return self.pruner_name, self.pruner_startup_trials, self.pruner_warmup_steps

    def sweep(self, arguments: list[str]) -> None:
        import optuna

        parser = OverridesParser.create()
        command_line = parser.parse_overrides(arguments)
        fixed = [o.input_line for o in command_line if not o.is_sweep_override()]
        space = {o.get_key_element(): distribution(o) for o in command_line if o.is_sweep_override()}
        for key, value in self.params.items():
            space.setdefault(key, distribution(parser.parse_override(f"{key}={value}")))

        sweep_dir = Path(self.config.hydra.sweep.dir).absolute()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        storage = self.storage or f"sqlite:///{sweep_dir / 'optuna.db'}"
        name = self.study_name or sweep_dir.name
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            direction=self.direction,
            sampler=self._sampler(),
            pruner=make_pruner(*self._pruner_settings()),
            load_if_exists=True,
        )
        log.info("Optuna study %r (%s), %d trials, storage %s", name, self.direction, self.n_trials, storage)

        pruner, startup, warmup = self._pruner_settings()
        trial_settings = [
            f"++optuna.storage={storage}",
            f"++optuna.study_name={name}",
            f"++optuna.pruner={pruner or 'null'}",
            f"++optuna.pruner_startup_trials={startup}",
            f"++optuna.pruner_warmup_steps={warmup}",
        ]
        done = 0
        while done < self.n_trials:
            trials = [study.ask(space) for _ in range(min(self.n_jobs, self.n_trials - done))]
            overrides = [
                tuple(
                    fixed
                    + [f"{key}={value}" for key, value in trial.params.items()]
                    + trial_settings
                    + [f"++optuna.trial_id={trial._trial_id}"]
                )
                for trial in trials
            ]
            returns = self.launcher.launch(overrides, initial_job_idx=done)
            for trial, ret in zip(trials, returns, strict=True):
                self._tell(study, trial, ret)
            done += len(trials)
        self._report(study, sweep_dir)

    @staticmethod
    def _tell(study, trial, ret: JobReturn) -> None:
        import optuna

        value: Any = ret._return_value
        if ret.status == JobStatus.COMPLETED and isinstance(value, int | float) and math.isfinite(value):
            study.tell(trial, float(value))
        elif isinstance(value, optuna.TrialPruned):
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            log.info("Trial %d pruned", trial.number)
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            log.warning("Trial %d failed: %s", trial.number, value)

    def _report(self, study, sweep_dir: Path) -> None:
        import optuna

        states = [t.state for t in study.trials]
        summary = {
            "study": study.study_name,
            "direction": self.direction,
            "trials": {s.name.lower(): states.count(s) for s in optuna.trial.TrialState if states.count(s)},
        }
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if complete:
            summary.update(
                best_value=study.best_value, best_params=study.best_params, best_trial=study.best_trial.number
            )
        OmegaConf.save(OmegaConf.create(summary), sweep_dir / "optimization_results.yaml")
        log.info("Optuna: %s (written to %s)", summary, sweep_dir / "optimization_results.yaml")
