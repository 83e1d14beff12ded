"""Seeing runs: sample grids and texts in TensorBoard, wandb and MLflow, metrics.csv and
curves.png whatever else a run logs to, `genkit plot` over a sweep, `genkit runs` with each run's
status, and an eval that reports progress and trains its classifier once when two evals start
together."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from genkit.commands.train import train
from tests.helpers import REPO, TINY_IMAGE_RUN, cli_in_process, make_cfg, tiny_text_run


def _tensorboard_tags(folder: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = {p.parent for p in folder.rglob("events.out.tfevents.*")}
    accumulator = EventAccumulator(str(events), size_guidance={"images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


@pytest.mark.slow
def test_sample_grids_and_texts_reach_tensorboard(tmp_path, tiny_data_root):
    train(make_cfg(tmp_path / "gan", f"data.root={tiny_data_root}", *TINY_IMAGE_RUN, "logger=tensorboard"))
    # TensorBoard adds to genkit's own record, which curves.png is drawn from
    assert all((tmp_path / "gan" / "outputs" / "run" / f).is_file() for f in ("metrics.csv", "curves.png"))
    events = _tensorboard_tags(tmp_path / "gan" / "outputs" / "run" / "tensorboard")
    images = events.Images("samples")
    assert images and images[-1].step == 4 and images[-1].width > 100  # the 8x8 grid, at its step
    (tmp_path / "gpt").mkdir()
    train(make_cfg(tmp_path / "gpt", *tiny_text_run(tmp_path / "gpt"), "trainer.max_steps=2", "logger=tensorboard"))
    events = _tensorboard_tags(tmp_path / "gpt" / "outputs" / "run" / "tensorboard")
    (text,) = [t for t in events.Tags()["tensors"] if t.startswith("samples")]
    assert b"sample 0" in events.Tensors(text)[-1].tensor_proto.string_val[0]


def in_genkit_runs(outputs: Path, cwd: Path) -> dict:
    out = cli_in_process("runs", str(outputs), "--json", cwd=cwd)
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)
    return row


@pytest.mark.slow
def test_sample_grids_reach_an_offline_wandb_run_that_keeps_metrics_csv(tmp_path, tiny_data_root):
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "GENKIT_DATA_DIR": str(tiny_data_root)}
    run = tmp_path / "outputs" / "run"
    script = Path(sys.executable).with_name("genkit")
    out = subprocess.run(
        [str(script), "train", *TINY_IMAGE_RUN, "model=vae", "logger=wandb", f"hydra.run.dir={run}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    grids = list(run.glob("wandb/offline-run-*/files/media/images/samples_*.png"))
    assert grids, sorted(str(p.relative_to(run)) for p in run.rglob("*"))[:40]
    assert (run / "metrics.csv").is_file() and (run / "curves.png").is_file()
    row = in_genkit_runs(tmp_path / "outputs", tmp_path)
    assert row["monitor"] == "val/loss" and row["last"] is not None and row["steps"] == 4


@pytest.mark.slow
def test_mlflow_and_tensorboard_together_beside_metrics_csv(tmp_path, tiny_data_root):
    """logger=[tensorboard,mlflow]: both, and metrics.csv; MLflow's store under paths.log_dir
    (outputs/mlflow.db, files in outputs/mlruns), read back with MLflow's own client: the
    metrics and the sample grid."""
    from mlflow.tracking import MlflowClient

    metrics = train(make_cfg(tmp_path, f"data.root={tiny_data_root}", *TINY_IMAGE_RUN, "model=vae",
                             "logger=[tensorboard,mlflow]"))  # fmt: skip
    run = tmp_path / "outputs" / "run"
    assert (run / "metrics.csv").is_file() and (run / "curves.png").is_file()
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    client = MlflowClient(f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}")
    (stored,) = client.search_runs([client.get_experiment_by_name("genkit").experiment_id])
    assert stored.info.run_name == "vae-mnist"
    assert stored.data.metrics["val/loss"] == pytest.approx(metrics["val/loss"], rel=1e-6)
    assert "train/loss" in stored.data.metrics
    (samples,) = client.list_artifacts(stored.info.run_id, "samples")
    assert samples.path == "samples/step_0000004.png"
    assert list((tmp_path / "outputs" / "mlruns").rglob("step_0000004.png"))
    row = in_genkit_runs(tmp_path / "outputs", tmp_path)
    assert row["monitor"] == "val/loss" and row["last"] == pytest.approx(metrics["val/loss"], rel=1e-5)


@pytest.mark.slow
def test_runs_end_with_curves_and_a_sweep_plots_on_one_chart(tmp_path, tiny_data_root):
    sweep = tmp_path / "sweep"
    out = cli_in_process(
        "train", "-m", *TINY_IMAGE_RUN, "trainer.max_steps=8", "trainer.max_epochs=2", "trainer.log_every_n_steps=2",
        "model.optimizer_g.lr=1e-4,2e-4", f"hydra.sweep.dir={sweep}",
        cwd=tmp_path, env={"GENKIT_DATA_DIR": str(tiny_data_root)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    runs = sorted(p.parent for p in sweep.rglob("metrics.csv"))
    assert len(runs) == 2 and all((r / "curves.png").is_file() for r in runs)
    assert all(json.loads((r / "status.json").read_text())["status"] == "finished" for r in runs)

    from genkit.runs.plots import run_labels

    assert run_labels(runs) == ["lr=0.0001", "lr=0.0002"]
    chart = tmp_path / "lr.png"
    out = cli_in_process("plot", str(sweep), "metric=train/g_loss", f"out={chart}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert chart.stat().st_size > 10_000 and "of 2 runs" in out.stdout
    # without metric=: the metric the runs rank by; these tiny GAN runs have none (no classifier),
    # so their first validation loss
    assert all(json.loads((r / "status.json").read_text()).get("monitor") is None for r in runs)
    out = cli_in_process("plot", str(sweep), f"out={chart}", cwd=tmp_path)
    assert out.returncode == 0 and "val/d_loss of 2 runs" in out.stdout, out.stderr
    bad = cli_in_process("plot", str(sweep), "metric=val/nope", f"out={chart}", cwd=tmp_path)
    assert bad.returncode == 2 and "metric=val/nope was not logged" in bad.stderr and "train/g_loss" in bad.stderr


def test_genkit_runs_lists_runs_with_their_status(tmp_path, tiny_data_root):
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    train(make_cfg(tmp_path / "a", f"data.root={tiny_data_root}", *TINY_IMAGE_RUN, "model=vae",
                   "model.test_nll_samples=2"))  # fmt: skip
    (tmp_path / "a" / "outputs" / "run").rename(outputs / "vae-mnist")
    # a run killed without a word (its process gone) and one that failed
    dead = outputs / "gan-mnist"
    dead.mkdir()
    (dead / "status.json").write_text(json.dumps({"status": "running", "pid": 2**22 + 12345, "host": os.uname()[1],
                                                  "started": 0, "run_name": "gan-mnist"}))  # fmt: skip
    out = cli_in_process("runs", str(outputs), "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = {r["run"]: r for r in json.loads(out.stdout)}
    assert rows["gan-mnist"]["status"] == "dead"
    vae = rows["vae-mnist"]
    assert vae["status"] == "finished" and vae["family"] == "VAE" and vae["steps"] == 4
    assert vae["monitor"] == "val/loss" and vae["best"] <= vae["last"]
    table = cli_in_process("runs", str(outputs), cwd=tmp_path)
    assert table.returncode == 0 and "finished" in table.stdout and "dead" in table.stdout
    assert cli_in_process("runs", str(tmp_path / "nope"), cwd=tmp_path).returncode == 2


@pytest.mark.slow
def test_eval_reports_progress_and_two_evals_train_the_classifier_once(tmp_path, tiny_data_root):
    """Two processes ask for the classifier of a fresh cache at once: one trains, one waits."""
    code = (
        "import json, sys, logging; logging.basicConfig(level=logging.INFO)\n"
        "from genkit.metrics.classifier import domain_classifier\n"
        "from tests.helpers import make_cfg, TINY_IMAGE_RUN\n"
        "from genkit.training.build import build_datamodule\n"
        "from pathlib import Path\n"
        f"cfg = make_cfg(Path(sys.argv[1]), 'data.root={tiny_data_root}', *TINY_IMAGE_RUN)\n"
        f"_, record = domain_classifier(build_datamodule(cfg), epochs=3, cache_dir=Path('{tmp_path / 'cache'}'))\n"
        "print('TRAINED_NOW', record['trained_now'])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path / f"p{i}")],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    trained = sorted("TRAINED_NOW True" in o for o in outputs)
    assert trained == [False, True], outputs
    trainer_log = next(o for o in outputs if "TRAINED_NOW True" in o)
    assert "mnist classifier: batch 1/" in trainer_log and "ETA" in trainer_log


@pytest.mark.parametrize("command", ["runs", "plot"])
def test_plain_commands_answer_help(tmp_path, command):
    out = cli_in_process(command, "--help", cwd=tmp_path)
    assert out.returncode == 0 and f"usage: genkit {command}" in out.stdout
