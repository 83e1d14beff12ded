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


def time_to_quality(tmp_path, row: str, steps: int, timeout: int) -> tuple[dict, str]:
    """One row of scripts/time_to_quality.py, shortened to `steps`: the row and the printed table."""
    out = run_script("time_to_quality.py", "--rows", row, "--steps", str(steps), "--work", str(tmp_path / "work"),
                     "--out", str(tmp_path / "ttq.json"), cwd=tmp_path, timeout=timeout)  # fmt: skip
    (result,) = json.loads((tmp_path / "ttq.json").read_text())["rows"]
    return result, out.stdout


@pytest.mark.slow
@needs_shared("tinyshakespeare")
def test_time_to_quality_runs_genkit_and_the_plain_loop(tmp_path):
    row, table = time_to_quality(tmp_path, "shakespeare", 20, timeout=600)
    assert row["command"] == "genkit train experiment=gpt_shakespeare_char_cpu"
    # both ran 20 steps from ln(65) = 4.17 nats down, and were timed
    assert 2.0 < row["value"] < 4.17 and 2.0 < row["reference_value"] < 4.17
    assert row["wall_s"] > 0 and row["reference_wall_s"] > 0
    assert math.isclose(row["ratio"], row["wall_s"] / row["reference_wall_s"], rel_tol=0.01)
    assert "| `genkit train experiment=gpt_shakespeare_char_cpu` |" in table
    raw_log = (tmp_path / "work" / "raw_shakespeare_0.log").read_text()
    assert "step 0: train" in raw_log and (tmp_path / "work" / "raw_shakespeare_0" / "ckpt.pt").is_file()


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
