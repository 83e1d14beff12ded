"""One writer per run directory (genkit.runs.lock): a second `genkit train` in a directory where a
run is going is refused (or waits, wait=true), and a lock whose holder is gone is taken over."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import lightning as L

from genkit.checkpoints.files import load_checkpoint
from genkit.runs.lock import LOCK_FILE, STALE_AFTER_S
from tests.helpers import REPO, SHARED_DATA, TINY_IMAGE_RUN, cli_in_process, run_cli, wait_for


class SlowSteps(L.Callback):
    """Sleeps at every training step, so that a tiny run lasts long enough to be run beside."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_train_batch_end(self, *args, **kwargs) -> None:
        time.sleep(self.seconds)


def start_cli(*args: str, cwd: Path, env: dict) -> subprocess.Popen:
    script = Path(sys.executable).with_name("genkit")
    full_env = {**os.environ, "GENKIT_DATA_DIR": str(SHARED_DATA), "PYTHONPATH": str(REPO), **env}
    return subprocess.Popen(
        [str(script), *args], cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def tiny_run(run_dir: Path, steps: int, *extra: str) -> list[str]:
    return [
        "train",
        *TINY_IMAGE_RUN,
        f"trainer.max_steps={steps}",
        "trainer.max_epochs=-1",
        "callbacks.model_checkpoint.every_n_train_steps=5",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]


def test_a_second_training_in_a_running_directory_is_refused_or_waits(tmp_path, tiny_data_root):
    run = tmp_path / "runs" / "conc"
    env = {"GENKIT_DATA_DIR": str(tiny_data_root)}
    slow = "+callbacks.slow={_target_: tests.cli.test_one_writer.SlowSteps, seconds: 0.15}"
    first = start_cli(*tiny_run(run, 40, slow), cwd=tmp_path, env=env)
    try:
        assert wait_for(
            lambda: first.poll() is not None or (run / "checkpoints" / "step_0000005.ckpt").is_file(), timeout=240
        ), (
            first.poll(),
            first.stderr.read() if first.poll() is not None else "",
        )
        second = run_cli(*tiny_run(run, 5), cwd=tmp_path, env=env)
        message = " ".join(second.stderr.split())
        assert second.returncode == 2 and "Traceback" not in second.stderr, second.stderr[-3000:]
        assert f"is in use: process {first.pid} on {socket.gethostname()}" in message, message
        assert "wait=true" in message
        # wait=true: starts when the first run ends, and resumes from its last.ckpt
        waiting = start_cli(*tiny_run(run, 45, "wait=true"), cwd=tmp_path, env=env)
        out, err = first.communicate(timeout=300)
        assert first.returncode == 0, err[-3000:]
        assert load_checkpoint(run / "checkpoints" / "step_0000040.ckpt")["global_step"] == 40
        out, err = waiting.communicate(timeout=300)
        assert waiting.returncode == 0, err[-3000:]
        assert "Waiting for process" in out + err and "Resuming from" in out + err, out[-2000:] + err[-2000:]
        assert load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 45
        assert json.loads((run / "status.json").read_text())["pid"] == waiting.pid
        assert not (run / LOCK_FILE).exists()
    finally:
        for proc in (first,):
            if proc.poll() is None:
                proc.kill()


def write_lock(run: Path, host: str, pid: int, age: float = 0.0) -> None:
    run.mkdir(parents=True, exist_ok=True)
    path = run / LOCK_FILE
    path.write_text(json.dumps({"host": host, "pid": pid, "started": time.time() - age, "slurm_job": None}))
    os.utime(path, (time.time() - age, time.time() - age))


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path, tiny_data_root):
    run = tmp_path / "run"
    write_lock(run, socket.gethostname(), dead_pid())
    out = cli_in_process(*tiny_run(run, 2), cwd=tmp_path, env={"GENKIT_DATA_DIR": str(tiny_data_root)})
    assert out.returncode == 0, out.stderr[-3000:]
    said = out.stdout + out.stderr
    assert "Taking over the stale lock" in said and "no longer exists" in said
    assert not (run / LOCK_FILE).exists()


def test_a_lock_of_another_host_is_stale_only_after_its_heartbeat_stops(tmp_path, tiny_data_root):
    run = tmp_path / "run"
    env = {"GENKIT_DATA_DIR": str(tiny_data_root)}
    write_lock(run, "node-elsewhere", 4242)
    out = cli_in_process(*tiny_run(run, 2), cwd=tmp_path, env=env)
    assert out.returncode == 2 and "process 4242 on node-elsewhere" in " ".join(out.stderr.split())
    assert (run / LOCK_FILE).is_file()  # the refused run removed nothing
    write_lock(run, "node-elsewhere", 4242, age=STALE_AFTER_S + 60)
    out = cli_in_process(*tiny_run(run, 2), cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "has not touched it for" in out.stdout + out.stderr
