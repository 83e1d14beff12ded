"""The `genkit` command as a user types it."""

import os
import shlex
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import cli_in_process, needs_shared, run_cli


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_help_lists_commands(tmp_path):
    out = run_cli("--help", cwd=tmp_path)
    assert out.returncode == 0
    assert "train" in out.stdout and "sample" in out.stdout


@pytest.mark.slow
def test_train_help_lists_groups(tmp_path):
    out = run_cli("train", "--help", cwd=tmp_path)
    assert out.returncode == 0
    assert "model: gan" in out.stdout.replace(", ", " ") or "model: " in out.stdout
    assert "data: " in out.stdout and "trainer: " in out.stdout


@pytest.mark.slow
def test_cfg_job_prints_config_without_running(tmp_path):
    out = run_cli("train", "model=gan", "--cfg", "job", cwd=tmp_path)
    assert out.returncode == 0
    assert "genkit.models.gan.GAN" in out.stdout
    assert not (tmp_path / "outputs").exists()


def test_unknown_model_is_short_and_lists_choices(tmp_path):
    out = cli_in_process("train", "model=nope", cwd=tmp_path)
    assert out.returncode != 0
    message = out.stdout + out.stderr
    assert "gan" in message and "nope" in message
    assert len(message.strip().splitlines()) <= 10
    assert "Traceback" not in message


def test_missing_data_offline_is_one_paragraph(tmp_path):
    out = cli_in_process(
        "train",
        "debug=fast",
        "data.mirrors=[http://127.0.0.1:9/]",
        cwd=tmp_path,
        env={"GENKIT_DATA_DIR": str(tmp_path / "empty")},
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert str(tmp_path / "empty" / "mnist") in out.stderr.replace("\n", "")


@pytest.mark.parametrize("kind", ["missing", "foreign", "corrupt"])
def test_bad_checkpoints_are_reported(tmp_path, kind):
    path = tmp_path / "model.ckpt"
    if kind == "foreign":
        torch.save({"weights": torch.zeros(2)}, path)
    elif kind == "corrupt":
        torch.save({"state_dict": {"w": torch.zeros(1000)}}, path)
        path.write_bytes(path.read_bytes()[:500])
    out = cli_in_process("sample", f"ckpt={path}", cwd=tmp_path)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "model.ckpt" in out.stderr.replace("\n", "")


@pytest.mark.slow
@needs_shared("mnist")
def test_train_then_sample_end_to_end(tmp_path):
    run = tmp_path / "run"
    out = run_cli("train", "model=gan", "data=mnist", "++trainer.max_steps=30", f"hydra.run.dir={run}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert list((run / "samples").glob("*.png"))
    assert (run / ".hydra" / "config.yaml").is_file()
    assert str(run) in out.stdout

    grid = tmp_path / "grid.png"
    out = run_cli("sample", f"ckpt={run}/checkpoints/last.ckpt", "n=16", f"out={grid}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    # a 4x4 grid of 28-pixel images with 2-pixel padding
    assert png_size(grid) == (4 * 30 + 2, 4 * 30 + 2)

    # without ckpt, the newest run under ./outputs is used (and named)
    (tmp_path / "outputs" / "x").mkdir(parents=True)
    (run).rename(tmp_path / "outputs" / "x" / "run")
    out = run_cli("sample", "n=4", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "newest run" in out.stdout
    assert list((tmp_path / "outputs" / "x" / "run" / "samples").glob("sample_*.png"))


@pytest.mark.parametrize("command,example", [("sample", "genkit sample ckpt="), ("eval", "genkit eval ckpt=")])
def test_each_command_help_shows_its_own_examples(tmp_path, command, example):
    out = cli_in_process(command, "--help", cwd=tmp_path)
    assert out.returncode == 0
    assert example in out.stdout and "genkit train model=gan" not in out.stdout


def test_progress_logs_the_first_step_without_a_terminal(tmp_path, tiny_data_root):
    from tests.helpers import TINY_IMAGE_RUN

    out = cli_in_process(
        "train", *TINY_IMAGE_RUN, "callbacks.progress.every_n_steps=100", f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path, env={"GENKIT_DATA_DIR": str(tiny_data_root)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "step 1/4" in (tmp_path / "run" / "genkit.log").read_text()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux's `script` for a terminal")
def test_on_a_terminal_genkit_log_still_holds_the_progress(tmp_path, tiny_data_root):
    from tests.helpers import TINY_IMAGE_RUN

    genkit = Path(sys.executable).with_name("genkit")
    run = tmp_path / "run"
    command = shlex.join([str(genkit), "train", *TINY_IMAGE_RUN, f"hydra.run.dir={run}"])
    env = {**os.environ, "GENKIT_DATA_DIR": str(tiny_data_root)}
    done = subprocess.run(["script", "-qec", command, "/dev/null"], env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:]
    log = (run / "genkit.log").read_text()
    assert "step 1/4" in log and "validation  val/d_" in log


@pytest.mark.slow
def test_gan_run_names_its_learning_rates_and_summarises_without_flops(tmp_path, tiny_data_root):
    from tests.helpers import TINY_IMAGE_RUN

    run = tmp_path / "run"
    out = cli_in_process(
        "train", *TINY_IMAGE_RUN, "logger=csv", "callbacks.lr_monitor.every_n_steps=1", f"hydra.run.dir={run}",
        cwd=tmp_path, env={"GENKIT_DATA_DIR": str(tiny_data_root)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "lr/generator" in header and "lr/discriminator" in header
    assert "trainable" in out.stdout and "FLOPs" not in out.stdout
