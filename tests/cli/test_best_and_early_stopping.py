"""checkpoints/best.ckpt ranked by the family's checkpoint_metric, `which=best|last` in sample and
eval, and early stopping on the same metric (off by default), across a resume."""

import pytest
import torch

from genkit.checkpoints.files import CheckpointError, resolve_checkpoint
from genkit.commands.train import train
from tests.helpers import TINY_IMAGE_RUN, cli_in_process, make_cfg

# a VAE that validates every epoch of 2 steps: val/loss ranks its checkpoints
VAE_RUN = (
    "model=vae",
    "model.test_nll_samples=2",
    *TINY_IMAGE_RUN,
    "data.val_size=80",  # 16 training images: one batch per epoch
    "trainer.max_steps=-1",
    "trainer.max_epochs=4",
    "trainer.check_val_every_n_epoch=1",
)


# diffusion validates on fixed noise: with a learning rate too small to move an fp32 weight its
# val/loss repeats exactly (genkit refuses lr=0 as a mistake)
FROZEN_DIFFUSION_RUN = (
    "model=diffusion",
    "model.net.base=8",
    "model.optimizer.lr=1e-30",
    *VAE_RUN[2:],
)


def run_dir(tmp_path):
    return tmp_path / "outputs" / "run"


def best_score(path) -> tuple[str, float]:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    (key, state), *_ = [(k, v) for k, v in ckpt["callbacks"].items() if k.startswith("BestCheckpoint")]
    return key, float(state["best_model_score"])


@pytest.mark.slow
def test_best_checkpoint_is_the_best_validation_and_sample_uses_it(tmp_path, tiny_data_root):
    train(make_cfg(tmp_path, f"data.root={tiny_data_root}", *VAE_RUN))
    checkpoints = run_dir(tmp_path) / "checkpoints"
    assert (checkpoints / "best.ckpt").is_file() and (checkpoints / "last.ckpt").is_file()
    key, score = best_score(checkpoints / "last.ckpt")
    assert "val/loss" in key
    metrics = (run_dir(tmp_path) / "metrics.csv").read_text().splitlines()
    column = metrics[0].split(",").index("val/loss")
    val_losses = [float(row.split(",")[column]) for row in metrics[1:] if row.split(",")[column]]
    assert len(val_losses) == 4 and score == pytest.approx(min(val_losses), rel=1e-5)

    assert resolve_checkpoint(run_dir(tmp_path), tmp_path) == checkpoints / "best.ckpt"
    assert resolve_checkpoint(run_dir(tmp_path), tmp_path, "last") == checkpoints / "last.ckpt"
    env = {"GENKIT_DATA_DIR": str(tiny_data_root)}
    out = cli_in_process("sample", f"ckpt={run_dir(tmp_path)}", "n=4", f"out={tmp_path}/s.png", cwd=tmp_path, env=env)
    assert out.returncode == 0 and "best.ckpt" in out.stdout + out.stderr
    out = cli_in_process("sample", f"ckpt={run_dir(tmp_path)}", "which=last", "n=4", cwd=tmp_path, env=env)
    assert out.returncode == 0 and "last.ckpt" in out.stdout + out.stderr


def test_a_family_without_a_checkpoint_metric_has_no_best(tmp_path, tiny_gan_checkpoint):
    run = tiny_gan_checkpoint.parent.parent
    assert not (run / "checkpoints" / "best.ckpt").exists()
    assert resolve_checkpoint(run, tmp_path) == tiny_gan_checkpoint  # default: last when there is no best
    with pytest.raises(CheckpointError, match="which=last"):
        resolve_checkpoint(run, tmp_path, "best")
    with pytest.raises(CheckpointError, match="is a file"):
        resolve_checkpoint(tiny_gan_checkpoint, tmp_path, "best")


@pytest.mark.slow
def test_early_stopping_stops_a_run_that_no_longer_improves_and_says_why(tmp_path, tiny_data_root, caplog):
    # val/loss never changes, so it stops after 1 + patience validations
    overrides = (*FROZEN_DIFFUSION_RUN, "trainer.max_epochs=20", "callbacks.early_stopping.patience=2")
    with caplog.at_level("INFO", logger="genkit"):
        train(make_cfg(tmp_path, f"data.root={tiny_data_root}", *overrides))
    assert "Early stopping at step 3" in caplog.text and "did not improve" in caplog.text
    ckpt = torch.load(run_dir(tmp_path) / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 3


@pytest.mark.slow
def test_best_and_early_stopping_survive_a_resume(tmp_path, tiny_data_root):
    """With a val/loss that never changes, only the first validation is ever 'best': a resumed run
    that forgot the best so far would write best.ckpt again and restart the patience count."""
    overrides = (*FROZEN_DIFFUSION_RUN, "callbacks.early_stopping.patience=50")
    checkpoints = run_dir(tmp_path) / "checkpoints"
    train(make_cfg(tmp_path, f"data.root={tiny_data_root}", *overrides, "trainer.max_epochs=2"))
    train(make_cfg(tmp_path, f"data.root={tiny_data_root}", *overrides, "trainer.max_epochs=4"))
    last = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
    best = torch.load(checkpoints / "best.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 4 and best["global_step"] == 1
    (stopper,) = [v for k, v in last["callbacks"].items() if k.startswith("EarlyStoppingOnMetric")]
    assert stopper["wait_count"] == 3  # validations 2, 3 and 4 did not improve on the first


# one batch an epoch, validations every 2 epochs, stopped by max_steps=3: the final validation
# (step 3) is not one Lightning schedules, and comes after a scheduled one (step 2)
STOPPED_BETWEEN_VALIDATIONS = (
    "trainer.max_epochs=-1",
    "trainer.max_steps=3",
    "trainer.check_val_every_n_epoch=2",
    "callbacks.early_stopping.patience=5",
)


def val_losses(run) -> list[float]:
    rows = (run / "metrics.csv").read_text().splitlines()
    column = rows[0].split(",").index("val/loss")
    return [float(row.split(",")[column]) for row in rows[1:] if row.split(",")[column]]


def callback_state(ckpt: dict, name: str) -> dict:
    (state,) = [v for k, v in ckpt["callbacks"].items() if k.startswith(name)]
    return state


def test_a_final_validation_that_is_best_is_in_best_ckpt(tmp_path, tiny_data_root):
    """A run stopped between two validations validates at its last step, inside fit: best.ckpt,
    early stopping and last.ckpt's record of both count it as any other validation."""
    train(make_cfg(tmp_path, f"data.root={tiny_data_root}", *VAE_RUN, *STOPPED_BETWEEN_VALIDATIONS))
    checkpoints = run_dir(tmp_path) / "checkpoints"
    losses = val_losses(run_dir(tmp_path))
    assert len(losses) == 2 and losses[1] < losses[0]  # the VAE still learns fast at step 3
    best = torch.load(checkpoints / "best.ckpt", map_location="cpu", weights_only=True)
    last = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
    assert best["global_step"] == last["global_step"] == 3
    for ckpt in (best, last):
        assert float(callback_state(ckpt, "BestCheckpoint")["best_model_score"]) == pytest.approx(losses[1], rel=1e-6)
        stopper = callback_state(ckpt, "EarlyStoppingOnMetric")
        assert stopper["wait_count"] == 0 and float(stopper["best_score"]) == pytest.approx(losses[1], rel=1e-6)
    # both resume as last.ckpt written at the step's end did: after step 3, its validation done
    for ckpt in (best, last):
        assert ckpt["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]["completed"] == 2


@pytest.mark.slow
def test_a_final_validation_that_is_not_best_counts_for_early_stopping(tmp_path, tiny_data_root):
    """val/loss never changes: best.ckpt stays at the first validation, the final one counts as a
    validation without improvement, and a resumed run goes on counting from there."""
    overrides = (*FROZEN_DIFFUSION_RUN, *STOPPED_BETWEEN_VALIDATIONS)
    checkpoints = run_dir(tmp_path) / "checkpoints"
    train(make_cfg(tmp_path, f"data.root={tiny_data_root}", *overrides))
    best = torch.load(checkpoints / "best.ckpt", map_location="cpu", weights_only=True)
    last = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
    assert best["global_step"] == 2 and last["global_step"] == 3
    assert callback_state(last, "EarlyStoppingOnMetric")["wait_count"] == 1
    assert callback_state(last, "BestCheckpoint")["best_model_path"].endswith("best.ckpt")

    train(make_cfg(tmp_path, f"data.root={tiny_data_root}", *overrides, "trainer.max_steps=4"))  # validates at 4
    last = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
    best = torch.load(checkpoints / "best.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 4 and best["global_step"] == 2
    assert callback_state(last, "EarlyStoppingOnMetric")["wait_count"] == 2
    assert len(val_losses(run_dir(tmp_path))) == 3 and len(set(val_losses(run_dir(tmp_path)))) == 1
