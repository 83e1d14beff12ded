"""Which checkpoint a run directory resumes from (genkit.checkpoints.files.newest_training_state):
the intact one of the highest global step, whichever file it is, opening no more files than that
takes. The files here are small dicts of the keys Lightning's checkpoints carry."""

import logging

import pytest
import torch

from genkit.checkpoints import files
from genkit.checkpoints.files import CheckpointError, newest_training_state


def state(step: int) -> dict:
    return {
        "pytorch-lightning_version": "2.6.0",
        "global_step": step,
        "epoch": 0,
        "loops": {},
        "optimizer_states": [],
        "state_dict": {"w": torch.full((2,), float(step))},
    }


def write(path, content) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)


@pytest.fixture
def run(tmp_path):
    return tmp_path / "run"


def make(run, **named) -> None:
    """make(run, last=10, step_15=15, hpc_ckpt_1=16, step_20=b""): a step, or the file's bytes."""
    for name, content in named.items():
        folder = run if name.startswith("hpc_ckpt_") else run / "checkpoints"
        if name.startswith("step_"):
            name = f"step_{int(name[5:]):07d}"
        write(folder / f"{name}.ckpt", state(content) if isinstance(content, int) else content)


def chosen(run) -> tuple[str, int]:
    path, step = newest_training_state(run)
    assert torch.load(path, weights_only=True)["global_step"] == step
    return path.name, step


def test_a_step_checkpoint_newer_than_last_wins(run):
    make(run, last=10, step_5=5, step_10=10, step_15=15)
    assert chosen(run) == ("step_0000015.ckpt", 15)


def test_last_wins_a_tie_and_is_taken_when_newest(run):
    make(run, last=15, step_10=10, step_15=15)
    assert chosen(run) == ("last.ckpt", 15)


def test_a_newer_hpc_checkpoint_wins(run):
    make(run, last=15, step_15=15, hpc_ckpt_1=16)
    assert chosen(run) == ("hpc_ckpt_1.ckpt", 16)


def test_damaged_and_weights_only_files_are_skipped_and_named(run, caplog):
    export = {"state_dict": {"w": torch.ones(2)}, "genkit": {}, "global_step": 20}  # what `genkit export` keeps
    make(run, last=export, step_10=10, step_15=15, step_20=b"PK\x03\x04 cut short")
    with caplog.at_level(logging.WARNING, logger="genkit"):
        assert chosen(run) == ("step_0000015.ckpt", 15)
    said = " ".join(caplog.messages)
    assert "last.ckpt holds a model's weights without their training state" in said, said
    assert "step_0000020.ckpt is damaged (14 bytes" in said and "resuming from" in said, said


def test_every_checkpoint_damaged_is_one_paragraph(run):
    make(run, last=b"", step_5=b"")
    with pytest.raises(CheckpointError, match=r"Cannot resume .*is damaged \(empty.*no intact step_\*\.ckpt"):
        newest_training_state(run)


def test_a_run_without_checkpoints_starts_afresh(run):
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "step_0000005-v1.ckpt").write_bytes(b"")  # not a name RunCheckpoint writes
    assert newest_training_state(run) is None


def test_only_the_files_needed_are_opened(run, monkeypatch):
    """Step files are ranked by name: last.ckpt and the newest step file are opened, not all 20."""
    make(run, last=95, **{f"step_{s}": s for s in range(5, 101, 5)})
    opened = []
    real = files.training_step
    monkeypatch.setattr(files, "training_step", lambda path: opened.append(path.name) or real(path))
    assert chosen(run) == ("step_0000100.ckpt", 100)
    assert sorted(opened) == ["last.ckpt", "step_0000100.ckpt"]
