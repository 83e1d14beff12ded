"""One writer per run directory (genkit.runs.lock): a second `genkit train` in a directory where a
run is going is refused (or waits, wait=true), and a lock whose holder is gone is taken over."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from genkit.checkpoints.files import load_checkpoint
from genkit.runs.lock import LOCK_FILE, STALE_AFTER_S
from tests.cli.hold import hold_at
from tests.helpers import REPO, SHARED_DATA, TINY_IMAGE_RUN, cli_in_process, run_cli, wait_for


def start_cli(*args: str, cwd: Path, env: dict, output=subprocess.PIPE) -> subprocess.Popen:
    """`genkit <args>` in the background, its output (stdout and stderr, in order) to `output`."""
    script = Path(sys.executable).with_name("genkit")
    full_env = {
        **os.environ,
        "GENKIT_DATA_DIR": str(SHARED_DATA),
        "PYTHONPATH": str(REPO),
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    return subprocess.Popen(
        [str(script), *args], cwd=cwd, env=full_env, stdout=output, stderr=subprocess.STDOUT, text=True
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


class Output:
    """A process's output, read to its end on a thread, that a test can wait on line by line."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: list[str] = []
        self.ended = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self.ended = True
            self._changed.notify_all()

    def wait_for_line(self, words: str, timeout: float) -> bool:
        """Whether a line holds `words`: waits for it, or for the output to end (the timeout only
        bounds a failure)."""
        with self._changed:
            self._changed.wait_for(lambda: self.ended or any(words in line for line in self.lines), timeout)
            return any(words in line for line in self.lines)

    def text(self, timeout: float = 60) -> str:
        """All of it, once the process has ended."""
        self._thread.join(timeout)
        return "".join(self.lines)


@pytest.mark.slow
def test_a_second_training_in_a_running_directory_is_refused_or_waits(tmp_path, tiny_data_root):
    """The first run is held at step 5 (tests.cli.hold) until the run that waits has said so: the
    second and third runs meet a run that trains however long each takes to start."""
    run = tmp_path / "runs" / "conc"
    env = {"GENKIT_DATA_DIR": str(tiny_data_root)}
    hold, held, release = hold_at(5, tmp_path)
    with open(tmp_path / "first.log", "w") as log:  # the child keeps its own handle
        first = start_cli(*tiny_run(run, 40, hold), cwd=tmp_path, env=env, output=log)
    waiting = None
    try:
        # the timeout only bounds a failure: the run holds, however long it takes to get there
        assert wait_for(lambda: held.exists() or first.poll() is not None, timeout=600)
        assert held.exists(), (first.poll(), (tmp_path / "first.log").read_text()[-3000:])
        second = run_cli(*tiny_run(run, 5), cwd=tmp_path, env=env)
        message = " ".join(second.stderr.split())
        assert second.returncode == 2 and "Traceback" not in second.stderr, second.stderr[-3000:]
        assert f"is in use: process {first.pid} on {socket.gethostname()}" in message, message
        assert "wait=true" in message
        # wait=true: says it waits while the first run is held, starts when that run ends, and resumes from it
        waiting = start_cli(*tiny_run(run, 45, "wait=true"), cwd=tmp_path, env=env)
        said = Output(waiting)
        assert said.wait_for_line(f"Waiting for process {first.pid}", timeout=600), said.text()[-3000:]
        assert first.poll() is None  # still held: the waiting run met it training
        release.touch()
        assert first.wait(timeout=600) == 0, (tmp_path / "first.log").read_text()[-3000:]
        assert load_checkpoint(run / "checkpoints" / "step_0000040.ckpt")["global_step"] == 40
        assert waiting.wait(timeout=600) == 0, said.text()[-3000:]
        output = said.text()
        assert f"Resuming from {run / 'checkpoints' / 'last.ckpt'} (global step 40" in output, output[-3000:]
        assert load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 45
        assert json.loads((run / "status.json").read_text())["pid"] == waiting.pid
        assert not (run / LOCK_FILE).exists()
    finally:
        release.touch()
        for proc in (first, waiting):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


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
