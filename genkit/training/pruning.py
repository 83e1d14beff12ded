"""Reports a trial's validation metric to its Optuna study and stops the trial when the
pruner says it is worse than the others were at the same step."""

import lightning as L


class OptunaPruning(L.Callback):
    def __init__(
        self,
        storage: str,
        study_name: str,
        trial_id: int,
        monitor: str,
        pruner: str | None = "median",
        pruner_startup_trials: int = 3,
        pruner_warmup_steps: int = 0,
    ):
        # optuna (and the sweeper that wraps it) load only in a trial of an Optuna sweep
        import optuna

        from genkit.training.sweeper import make_pruner

        self.monitor = monitor
        study = optuna.load_study(
            study_name=study_name,
            storage=storage,
            pruner=make_pruner(pruner, pruner_startup_trials, pruner_warmup_steps),
        )
        self.trial = optuna.trial.Trial(study, trial_id)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import optuna

        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        prune = False
        if trainer.is_global_zero:
            self.trial.report(float(trainer.callback_metrics[self.monitor]), step=trainer.global_step)
            prune = self.trial.should_prune()
        if trainer.strategy.broadcast(prune):
            raise optuna.TrialPruned(f"trial {self.trial.number} pruned at step {trainer.global_step}")
