"""The measuring scripts of scripts/ that the docs quote, run briefly on the real data."""

import json
import math
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO, SHARED_DATA, needs_shared


def run_script(name: str, *args: str, cwd, timeout: int) -> subprocess.CompletedProcess:
    """python scripts/<name> args, on the shared data, as the docs show it; fails on a bad exit."""
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / name), *args], cwd=cwd, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, "GENKIT_DATA_DIR": str(SHARED_DATA)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def time_to_quality(tmp_path, row: str, steps: int, timeout: int, *extra: str) -> tuple[dict, str]:
    """One row of scripts/time_to_quality.py, shortened to `steps`: the row and the printed table."""
    out = run_script("time_to_quality.py", "--rows", row, "--steps", str(steps), "--work", str(tmp_path / "work"),
                     "--out", str(tmp_path / "ttq.json"), *extra, cwd=tmp_path, timeout=timeout)  # fmt: skip
    (result,) = json.loads((tmp_path / "ttq.json").read_text())["rows"]
    return result, out.stdout


@pytest.mark.slow
@needs_shared("tinyshakespeare")
def test_time_to_quality_runs_genkit_and_the_plain_loop(tmp_path):
    row, table = time_to_quality(tmp_path, "shakespeare", 20, 600, "--rounds", "1", "--threads", "1")
    assert row["command"] == "genkit train experiment=gpt_shakespeare_char_cpu" and row["threads"] == 1
    # both ran 20 steps from ln(65) = 4.17 nats down, and were timed
    assert 2.0 < row["value"] < 4.17 and 2.0 < row["reference_value"] < 4.17
    assert row["wall_s"] > 0 and row["reference_wall_s"] > 0
    assert math.isclose(row["ratio"], row["wall_s"] / row["reference_wall_s"], rel_tol=0.01)
    assert "| `genkit train experiment=gpt_shakespeare_char_cpu` |" in table
    # the end-to-end utilisation: 20 steps' training FLOPs over each whole command, against the CPU's peak
    assert 0 < row["mfu"]["genkit"] < 1 and row["train_tflop"] > 0 and row["peak_gflops"]["fp32"] > 0
    assert "| 1 | genkit |" in table and "| 1 | plain loop |" in table
    raw_log = (tmp_path / "work" / "plain_loop_shakespeare_1t_0.log").read_text()
    assert "step 0: train" in raw_log and (tmp_path / "work" / "plain_loop_shakespeare_1t_0" / "ckpt.pt").is_file()


@pytest.mark.slow
@needs_shared("ptb")
def test_time_to_quality_ptb_row_runs_genkit_and_the_word_language_model_loop(tmp_path):
    row, _ = time_to_quality(tmp_path, "ptb", 5, timeout=900)
    assert row["command"] == "genkit train experiment=lstm_ptb"
    assert row["reference"] == "python scripts/raw_lstm_loop.py"
    # a few steps from a uniform guess over 10,000 words: both scored the whole test split
    assert 300 < row["value"] < 10_000 and 300 < row["reference_value"] < 10_000
    raw_log = (tmp_path / "work" / "raw_lstm.log").read_text()
    assert raw_log.count("val ppl") == 6 and '"epochs": 6' in raw_log


@pytest.mark.slow
@needs_shared("tinyshakespeare")
def test_the_plain_gpt_loop_runs_in_bf16_when_asked(tmp_path):
    out = run_script("raw_gpt_loop.py", "--bf16", "--steps", "5", "--out", str(tmp_path), cwd=tmp_path, timeout=300)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["steps"] == 5 and 2.0 < result["val_loss"] < 4.5


@pytest.mark.slow
@needs_shared("wordnet")
def test_pairs_padding_speed_measures_grouped_batches_padding_less(tmp_path):
    out = run_script("pairs_padding_speed.py", "--records", "256", "--steps", "2", cwd=tmp_path, timeout=300).stdout

    def padding(row: str) -> float:
        line = next(line for line in out.splitlines() if line.startswith(row))
        return float(line.split("% padding")[0].rsplit(" ", 1)[1])

    assert padding("grouped:") < padding("padded:") / 2
    assert "packed (text windows)" in out


@pytest.mark.slow
def test_task_curve_reads_a_pairs_runs_validations(tmp_path):
    """scripts/task_curve.py: one row per validation of a real run, minutes counted after --before."""
    from tests.helpers import cli_in_process
    from tests.pairs_helpers import tiny_pairs_run

    run = tmp_path / "run"
    overrides = [o for o in tiny_pairs_run(tmp_path) if not o.startswith("trainer.max_steps")]
    cli_in_process("train", *overrides, "trainer.max_steps=4", "trainer.val_check_interval=2",
                   "trainer.check_val_every_n_epoch=null", f"hydra.run.dir={run}", cwd=tmp_path)  # fmt: skip
    before = tmp_path / "before"
    before.mkdir()
    (before / "status.json").write_text(json.dumps({"started": 0.0, "ended": 120.0}))
    png = tmp_path / "curve.png"
    out = run_script("task_curve.py", str(run), "--before", str(before), "--metric", "val/accuracy",
                     "--target", "0.5", "--png", str(png), cwd=tmp_path, timeout=120).stdout  # fmt: skip
    rows = [line.split("|")[1:4] for line in out.splitlines() if line.startswith("| ") and "step" not in line]
    assert [int(step) for step, _, _ in rows] == [2, 4]
    assert all(2.0 <= float(minutes) < 5.0 and 0 <= float(value) <= 1 for _, minutes, value in rows)
    assert png.stat().st_size > 1000


@pytest.mark.slow
@needs_shared("tinyshakespeare")
def test_run_breakdown_gives_every_second_of_the_command_to_one_place(tmp_path):
    run_script("run_breakdown.py", "--threads", "1", "--ops", "3", "--work", str(tmp_path / "work"),
               "--out", str(tmp_path / "b.json"), "trainer.max_steps=12", "trainer.val_check_interval=6",
               cwd=tmp_path, timeout=600)  # fmt: skip
    report = json.loads((tmp_path / "b.json").read_text())
    (run,) = report["runs"]
    assert run["threads"] == 1 and run["steps"] == 12
    seconds = run["seconds"]
    # the categories cover the whole command, and none twice
    assert math.isclose(sum(seconds.values()), run["wall_s"], rel_tol=1e-3)
    assert seconds["start-up"] > 1 and seconds["steps"] > 0 and seconds["validation"] > 0 and seconds["exit"] > 0
    (ops,) = report["ops"]
    assert ops["steps"] == 3 and ops["self_cpu_s"]["matrix products"] > 0
    assert 0 < ops["model_gflops"] < max(ops["peak_gflops"].values()) * 1.5


def test_nanogpts_val_loss_is_read_from_its_last_evaluation():
    sys.path.insert(0, str(REPO / "scripts"))
    from time_to_quality import nanogpt_val_loss

    # in the format of nanoGPT's train.py output (its first three lines as printed here, 2026-12-07)
    log = (
        "step 0: train loss 4.1676, val loss 4.1649\n"
        "iter 0: loss 4.1828, time 436.23ms, mfu -100.00%\n"
        "iter 1: loss 4.1373, time 31.81ms, mfu -100.00%\n"
        "step 20: train loss 3.3110, val loss 3.3371\n"
        "iter 20: loss 3.2948, time 35.02ms, mfu 0.01%\n"
    )
    assert nanogpt_val_loss(log) == 3.3371
