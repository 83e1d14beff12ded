"""Resuming runs and surviving faults: normal stops, kill -9, SIGTERM, SIGUSR1, NaN, corrupt files."""

import csv
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys

import pytest
import torch

from genkit.checkpoints.files import AtomicCheckpointIO, CheckpointWriteError, load_checkpoint
from genkit.commands.train import train
from tests.cli.hold import hold_at
from tests.cli.test_bad_input import assert_one_paragraph
from tests.helpers import (
    REPO,
    TINY_IMAGE_RUN,
    assert_resumed_run_draws_the_batches_of_a_straight_one,
    cli_in_process,
    make_cfg,
    run_cli,
    tiny_text_run,
    wait_for,
)


def tiny_gan(tmp_path, root, *extra):
    return make_cfg(tmp_path, f"data.root={root}", *TINY_IMAGE_RUN, *extra)


def csv_rows(path) -> list[dict]:
    with open(path) as f:
        return [{k: v for k, v in row.items() if v} for row in csv.DictReader(f)]


def ckpt_step(path) -> int:
    return load_checkpoint(path)["global_step"]


@pytest.mark.slow
def test_resume_after_normal_stop_continues_at_the_same_step(tmp_path, tiny_data_root):
    run = tmp_path / "outputs" / "run"
    train(tiny_gan(tmp_path, tiny_data_root, "trainer.max_steps=6", "trainer.max_epochs=-1"))
    assert ckpt_step(run / "checkpoints" / "last.ckpt") == 6
    rows_before = csv_rows(run / "metrics.csv")
    train(tiny_gan(tmp_path, tiny_data_root, "trainer.max_steps=10", "trainer.max_epochs=-1"))
    assert ckpt_step(run / "checkpoints" / "last.ckpt") == 10
    rows_after = csv_rows(run / "metrics.csv")
    # the logger appends (new columns may widen the header; earlier rows keep their values)
    assert rows_after[: len(rows_before)] == rows_before and len(rows_after) > len(rows_before)
    assert max(int(r["step"]) for r in rows_after) >= 9


@pytest.mark.slow
def test_resumed_run_sees_exactly_the_unseen_batches(tmp_path, tiny_data_root):
    """80 training images in batches of 16: 5 batches an epoch; stop at 7 (mid-epoch), resume to 12."""
    common = ("trainer.max_epochs=-1", "data.split_seed=3")
    straight = tmp_path / "straight.txt"
    train(
        tiny_gan(
            tmp_path / "a",
            tiny_data_root,
            *common,
            "trainer.max_steps=12",
            f"+callbacks.recorder={{_target_: tests.helpers.BatchRecorder, path: {straight}}}",
        )
    )
    resumed = tmp_path / "resumed.txt"
    for steps in (7, 12):
        train(
            tiny_gan(
                tmp_path / "b",
                tiny_data_root,
                *common,
                f"trainer.max_steps={steps}",
                f"+callbacks.recorder={{_target_: tests.helpers.BatchRecorder, path: {resumed}}}",
            )
        )
    assert resumed.read_text().splitlines() == straight.read_text().splitlines()
    assert len(straight.read_text().splitlines()) == 12


@pytest.mark.slow
def test_a_gpt_run_resumed_mid_epoch_sees_exactly_the_unseen_windows(tmp_path):
    """With max_epochs set, the GPT's LR schedule counts the run's steps while the optimizer is
    configured, which builds the training loader before the checkpoint is restored: the loader's
    saved position must still be loaded into the loader that trains
    (genkit.models.base.GenerativeModel.planned_steps)."""
    run = [*tiny_text_run(tmp_path), "trainer.max_epochs=3", "trainer.val_check_interval=4",
           "++trainer.limit_val_batches=1"]  # fmt: skip
    assert_resumed_run_draws_the_batches_of_a_straight_one(tmp_path, run, stop=5, steps=10)


def start_training(tmp_path, root, *extra, max_steps: int = 100000) -> tuple[subprocess.Popen, object]:
    run = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "genkit.cli",
        "train",
        f"data.root={root}",
        *TINY_IMAGE_RUN[:3],
        "trainer.accelerator=cpu",
        "trainer.precision=32-true",
        f"trainer.max_steps={max_steps}",
        "trainer.max_epochs=-1",
        "callbacks.model_checkpoint.every_n_train_steps=5",
        "logger=csv",
        f"hydra.run.dir={run}",
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # the callbacks of tests.cli.hold
    with open(tmp_path / "train.log", "w") as log:  # the child process keeps its own handle
        return subprocess.Popen(args, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=env), run


def newest_state(run) -> tuple[object, int]:
    """What resume must take after a kill: the checkpoint of the highest global step, last.ckpt at
    a tie; every file is loaded whole (atomic writes leave no half-written one)."""
    files = [run / "checkpoints" / "last.ckpt", *(run / "checkpoints").glob("step_*.ckpt")]
    steps = {path: ckpt_step(path) for path in files if path.exists()}
    newest = max(steps, key=lambda path: (steps[path], path.name == "last.ckpt"))
    return newest, steps[newest]


@pytest.mark.slow
def test_kill_9_mid_epoch_loses_at_most_one_interval(tmp_path, tiny_data_root):
    proc, run = start_training(tmp_path, tiny_data_root)
    try:
        # generous: under a loaded machine the child takes long to start (no assertion on speed)
        assert wait_for(lambda: (run / "checkpoints" / "step_0000015.ckpt").exists(), timeout=600)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # wherever the kill fell, even between a step's step_*.ckpt and its last.ckpt (written in that
    # order), the newest state by global step is intact and at most one interval old
    newest, saved = newest_state(run)
    assert saved >= 15 and saved % 5 == 0
    out = run_cli(
        "train",
        f"data.root={tiny_data_root}",
        *TINY_IMAGE_RUN[:3],
        "trainer.accelerator=cpu",
        f"trainer.max_steps={saved + 3}",
        "trainer.max_epochs=-1",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"Resuming from {newest} (global step {saved}," in out.stdout, out.stdout[-2000:]
    assert ckpt_step(run / "checkpoints" / "last.ckpt") == saved + 3
    # a write that kill -9 cut short leaves a temporary file; the resumed run clears it
    assert not list((run / "checkpoints").glob(".*.tmp"))


def trained_to_6_killed_before_last(tmp_path, root) -> tuple[object, object]:
    """A run as kill -9 leaves it between Lightning's two writes of step 6: step_0000006.ckpt
    written, last.ckpt still of step 4 (copied from step_0000004.ckpt, as it was then)."""
    cfg = tiny_gan(tmp_path, root, "trainer.max_steps=6", "trainer.max_epochs=-1",
                   "callbacks.model_checkpoint.every_n_train_steps=2")  # fmt: skip
    train(cfg)
    checkpoints = tmp_path / "outputs" / "run" / "checkpoints"
    shutil.copyfile(checkpoints / "step_0000004.ckpt", checkpoints / "last.ckpt")
    assert ckpt_step(checkpoints / "last.ckpt") == 4 and ckpt_step(checkpoints / "step_0000006.ckpt") == 6
    return checkpoints.parent, checkpoints


@pytest.mark.slow
def test_resume_takes_a_step_checkpoint_newer_than_last_and_says_so(tmp_path, tiny_data_root):
    run, checkpoints = trained_to_6_killed_before_last(tmp_path, tiny_data_root)
    seen = tmp_path / "resumed_batches.txt"
    out = cli_in_process("train", f"data.root={tiny_data_root}", *TINY_IMAGE_RUN, "trainer.max_steps=8",
                         "trainer.max_epochs=-1", "callbacks.model_checkpoint.every_n_train_steps=2",
                         f"+callbacks.recorder={{_target_: tests.helpers.BatchRecorder, path: {seen}}}",
                         f"hydra.run.dir={run}", cwd=tmp_path)  # fmt: skip
    said = " ".join((out.stdout + out.stderr).split())
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"Resuming from {checkpoints / 'step_0000006.ckpt'} (global step 6, the newest intact" in said, said
    # it trained steps 7 and 8 only (from last.ckpt it would have trained 5 to 8)
    assert [line.split()[0] for line in seen.read_text().splitlines()] == ["6", "7"]
    assert ckpt_step(checkpoints / "last.ckpt") == 8


@pytest.mark.slow
def test_resume_given_a_run_directory_takes_its_newest_intact_checkpoint(tmp_path, tiny_data_root):
    """resume=<run dir> from another directory: the same rule, and a damaged newer file is named."""
    run, checkpoints = trained_to_6_killed_before_last(tmp_path / "a", tiny_data_root)
    (checkpoints / "step_0000008.ckpt").write_bytes(b"")  # newer still, but empty: skipped, and said
    new_run = tmp_path / "b"
    out = cli_in_process("train", f"data.root={tiny_data_root}", *TINY_IMAGE_RUN, "trainer.max_steps=7",
                         "trainer.max_epochs=-1", f"resume={run}", f"hydra.run.dir={new_run}",
                         cwd=tmp_path)  # fmt: skip
    said = " ".join((out.stdout + out.stderr).split())
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"{checkpoints / 'step_0000008.ckpt'} is damaged (empty" in said, said
    assert f"Resuming from {checkpoints / 'step_0000006.ckpt'} (global step 6," in said, said
    assert ckpt_step(new_run / "checkpoints" / "last.ckpt") == 7
    assert ckpt_step(checkpoints / "last.ckpt") == 4  # the other run's files are only read


@pytest.mark.slow
def test_resume_from_an_export_names_model_init_from(tmp_path, tiny_gan_checkpoint, tiny_data_root):
    """A `genkit export` holds weights without trainer state: today's KeyError, now one paragraph."""
    exported = tmp_path / "exported.ckpt"
    folder = tmp_path / "exported_safetensors"
    for out, fmt in ((exported, "ckpt"), (folder, "safetensors")):
        made = cli_in_process("export", f"ckpt={tiny_gan_checkpoint}", f"out={out}", f"format={fmt}", cwd=tmp_path)
        assert made.returncode == 0, made.stderr[-3000:]
        refused = cli_in_process("train", f"data.root={tiny_data_root}", *TINY_IMAGE_RUN, f"resume={out}",
                                 f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)  # fmt: skip
        assert_one_paragraph(refused, [f"resume={out}", "without its training state", f"model.init_from={out}"])
        assert "KeyError" not in refused.stderr
    assert not (tmp_path / "run").exists()  # refused before a run directory was made (or it was removed)


def test_resume_from_a_damaged_file_says_to_pass_the_run_directory(tmp_path, tiny_data_root):
    empty = tmp_path / "cut_short.ckpt"
    empty.write_bytes(b"")
    refused = cli_in_process("train", f"data.root={tiny_data_root}", *TINY_IMAGE_RUN, f"resume={empty}",
                             f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)  # fmt: skip
    assert_one_paragraph(refused, [f"resume={empty}", "is damaged (empty", "resume=<its run directory>"])


@pytest.mark.slow
@pytest.mark.parametrize(
    "signum,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGUSR1, 0)], ids=["TERM", "INT", "USR1"]
)
def test_signals_save_and_print_a_resume_command_that_works(tmp_path, tiny_data_root, signum, code):
    # held at step 10 until the signal is sent, so that it always arrives mid-run, before max_steps
    hold, held, release = hold_at(10, tmp_path)
    proc, run = start_training(tmp_path, tiny_data_root, hold, max_steps=40)
    try:
        assert wait_for(lambda: held.exists() or proc.poll() is not None, timeout=600)
        assert held.exists(), (tmp_path / "train.log").read_text()[-3000:]
        proc.send_signal(signum)
    finally:
        release.touch()
    assert proc.wait(timeout=300) == code, (tmp_path / "train.log").read_text()[-3000:]
    log = (tmp_path / "train.log").read_text()
    step = ckpt_step(run / "checkpoints" / "last.ckpt")
    assert step >= 10
    if signum == signal.SIGUSR1:
        return
    assert "Traceback" not in log
    # genkit runs: stopped by the signal, with its curves drawn
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "stopped" and signum.name in status["reason"], status
    assert (run / "curves.png").is_file()
    (command,) = [line.split("To resume, run: ", 1)[1] for line in log.splitlines() if "To resume, run: " in line]
    args = shlex.split(command)
    assert args[:2] == ["genkit", "train"] and f"hydra.run.dir={run}" in args
    # exactly as printed (its +callbacks.hold, whose release file exists, is imported from tests.cli.hold)
    out = run_cli(*args[1:], cwd=tmp_path, env={"PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"Resuming from {run / 'checkpoints' / 'last.ckpt'}" in out.stdout
    assert ckpt_step(run / "checkpoints" / "last.ckpt") == 40


def test_nan_before_any_checkpoint_says_nothing_is_kept(tmp_path, tiny_data_root):
    out = cli_in_process(
        "train",
        f"data.root={tiny_data_root}",
        *TINY_IMAGE_RUN,
        "trainer.max_steps=20",
        "+callbacks.poison={_target_: tests.helpers.PoisonWeights, at_step: 1}",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert out.returncode == 2
    message = " ".join(out.stderr.split())
    assert "became nan at step 2" in message and "no checkpoint had been saved yet" in message


def test_a_run_that_fails_before_its_first_step_leaves_no_directory(tmp_path, tiny_data_root):
    out = cli_in_process("train", "model=lm", "data=mnist", cwd=tmp_path, env={"GENKIT_DATA_DIR": str(tiny_data_root)})
    assert out.returncode == 2
    assert not [p for p in (tmp_path / "outputs").rglob("*") if p.is_file()]


@pytest.mark.slow
def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path, tiny_data_root):
    out = run_cli(
        "train",
        f"data.root={tiny_data_root}",
        *TINY_IMAGE_RUN[:3],
        "trainer.accelerator=cpu",
        "trainer.max_steps=50",
        "trainer.max_epochs=-1",
        "callbacks.model_checkpoint.every_n_train_steps=5",
        "+callbacks.poison={_target_: tests.helpers.PoisonWeights, at_step: 7}",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO)},
    )
    assert out.returncode == 2
    assert "became nan at step 8" in out.stderr.replace("\n", " ") and "Traceback" not in out.stderr
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["status"] == "failed" and "became nan" in status["reason"], status
    good = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert good["global_step"] == 5
    assert all(torch.isfinite(t).all() for t in good["state_dict"].values())


@pytest.mark.slow
def test_corrupt_last_checkpoint_is_named_on_resume(tmp_path, tiny_data_root):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"PK\x03\x04 this is not a checkpoint")
    out = run_cli("train", f"data.root={tiny_data_root}", *TINY_IMAGE_RUN, f"hydra.run.dir={run}", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    message = " ".join(out.stderr.split())
    assert "last.ckpt is damaged" in message and "no intact step_*.ckpt" in message, message


def test_atomic_save_never_leaves_a_partial_file(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    target = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, target)

    def crash(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(CheckpointWriteError, match="disk full"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, target)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(target)["state_dict"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
