"""Hydra multiruns with the basic launcher, and genkit's Optuna sweeper."""

import pytest
import yaml

from genkit.checkpoints.files import load_checkpoint
from tests.helpers import TINY_IMAGE_RUN, run_cli, tiny_text_run


@pytest.mark.slow
def test_multirun_of_two_jobs(tmp_path, tiny_data_root):
    out = run_cli(
        "train", "-m", f"data.root={tiny_data_root}", *TINY_IMAGE_RUN, "model.optimizer_g.lr=1e-4,2e-4", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs" / "multirun" / "gan-mnist").iterdir()
    lrs = []
    for job in ("0", "1"):
        ckpt = load_checkpoint(sweep / job / "checkpoints" / "last.ckpt")
        lrs.append(ckpt["genkit"]["config"]["model"]["optimizer_g"]["lr"])
    assert lrs == [1e-4, 2e-4]


@pytest.mark.slow
def test_optuna_sweep_of_three_trials(tmp_path):
    out = run_cli(
        "train",
        "-m",
        "hparams_search=gpt_ptb_optuna",
        *tiny_text_run(tmp_path),
        "trainer.max_steps=8",
        "trainer.val_check_interval=4",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.seed=0",
        "hydra.sweeper.params={model.optimizer.lr: 'tag(log, interval(1e-4, 1e-2))',"
        " model.net.n_embd: 'choice(32, 64)'}",
        cwd=tmp_path,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs" / "multirun" / "lm-text").iterdir()
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert sum(result["trials"].values()) == 3
    # the command line replaced two of the example's four parameters
    assert result["best_value"] > 1 and len(result["best_params"]) == 4
    assert result["best_params"]["model.net.n_embd"] in (32, 64)
    assert (sweep / "optuna.db").is_file()


@pytest.mark.slow
def test_gan_optuna_search_scores_trials_by_validation_fid(tmp_path, tiny_data_root):
    """hparams_search=gan_optuna as shipped: trials ranked by val/fid_clf of genkit.callbacks.fid.ValidationFID."""
    out = run_cli(
        "train",
        "-m",
        "hparams_search=gan_optuna",
        f"data.root={tiny_data_root}",
        *TINY_IMAGE_RUN,
        "callbacks.fid.n_samples=32",
        "+callbacks.fid.classifier_epochs=1",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.seed=0",
        "hydra.sweeper.params={data.batch_size: 'choice(16)'}",
        cwd=tmp_path,
        env={"XDG_CACHE_HOME": str(tmp_path / "cache")},
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs" / "multirun" / "gan-mnist").iterdir()
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert sum(result["trials"].values()) == 2
    assert result["best_value"] >= 0 and result["best_params"]["data.batch_size"] == 16
    assert set(result["best_params"]) == {
        "model.optimizer_g.lr",
        "model.optimizer_d.lr",
        "model.loss",
        "data.batch_size",
    }
    rows = (sweep / "0" / "metrics.csv").read_text()
    assert "val/fid_clf" in rows and "val/is_clf" in rows


class _FakeStrategy:
    def broadcast(self, value):
        return value


class _FakeTrainer:
    def __init__(self, value, step):
        import torch

        self.callback_metrics = {"val/ppl": torch.tensor(value)}
        self.global_step, self.sanity_checking, self.is_global_zero = step, False, True
        self.strategy = _FakeStrategy()


def test_pruning_stops_a_trial_worse_than_the_median(tmp_path):
    import optuna

    from genkit.training.pruning import OptunaPruning

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=storage, pruner=optuna.pruners.MedianPruner(1, 0))
    settings = {"pruner": "median", "pruner_startup_trials": 1}
    good = study.ask()
    callback = OptunaPruning(storage, "s", good._trial_id, "val/ppl", **settings)
    for step in (10, 20):
        callback.on_validation_end(_FakeTrainer(100.0, step), None)
    study.tell(good, 100.0)

    bad = study.ask()
    callback = OptunaPruning(storage, "s", bad._trial_id, "val/ppl", **settings)
    with pytest.raises(optuna.TrialPruned):
        callback.on_validation_end(_FakeTrainer(500.0, 10), None)


@pytest.mark.slow
def test_lstm_ptb_optuna_search_runs_as_shipped(tmp_path):
    """hparams_search=lstm_ptb_optuna's search space names keys of experiment=lstm_ptb: two trials
    of it, on a small corpus and tiny steps, sample every parameter and rank by val/ppl."""
    out = run_cli(
        "train",
        "-m",
        "experiment=lstm_ptb",
        "hparams_search=lstm_ptb_optuna",
        *tiny_text_run(tmp_path),
        "model/lm_net@model.net=lstm",
        "model.net.n_layer=1",
        "trainer.max_steps=4",
        "trainer.val_check_interval=4",
        "test=false",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.seed=0",
        cwd=tmp_path,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs" / "multirun" / "lstm_ptb").iterdir()
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert sum(result["trials"].values()) == 2
    assert set(result["best_params"]) == {
        "model.optimizer.lr",
        "model.net.dropout",
        "model.net.n_embd",
        "data.block_size",
        "data.batch_size",
    }
    assert result["best_value"] > 1
