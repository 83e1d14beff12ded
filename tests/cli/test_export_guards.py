"""`genkit export` never writes over a run's own files, nor over anything an export did not write:
out= inside (or holding) the run being exported, out= at any run directory, and an existing out=
that is not an earlier export are refused in one paragraph whatever overwrite= says, and leave
every file where it was; an earlier export is still replaced with overwrite=true."""

import hashlib
import shutil
from pathlib import Path

import pytest

from tests.cli.test_bad_input import assert_one_paragraph
from tests.helpers import cli_in_process


def files_of(folder: Path) -> dict[str, str]:
    """Every file below folder and a digest of its bytes: what must be unchanged after a refusal."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def run(tmp_path, tiny_gan_checkpoint) -> Path:
    """A writable copy of a tiny GAN run, with the .hydra/ a run started by the CLI has and a step
    checkpoint beside last.ckpt."""
    run = tmp_path / "outputs" / "gan" / "2026-01-01_00-00-00_000000"
    shutil.copytree(tiny_gan_checkpoint.parent.parent, run)
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text("run_name: gan\n")
    shutil.copy(run / "checkpoints" / "last.ckpt", run / "checkpoints" / "step_0000002.ckpt")
    return run


def export(tmp_path, ckpt, *options):
    return cli_in_process("export", f"ckpt={ckpt}", *options, cwd=tmp_path)


@pytest.mark.parametrize(
    "where,source,options,words",
    [
        # the whole run replaced by a folder export (checkpoints, .hydra, metrics.csv gone)
        (".", ".", ["format=safetensors"], ["is the run directory being exported", "whatever overwrite= says"]),
        # the resume state replaced by a weights-only file
        ("checkpoints/last.ckpt", "checkpoints/step_0000002.ckpt", [], ["is inside the run directory being exported"]),
        ("checkpoints", ".", ["format=safetensors"], ["is inside the run directory being exported"]),
        ("exported.ckpt", ".", [], ["is inside the run directory being exported", "out=exports/"]),
        # the folder that holds the run
        ("..", ".", ["format=safetensors"], ["holds the checkpoint being exported", "last.ckpt"]),
    ],
    ids=["run dir", "last.ckpt", "checkpoints", "new file in the run", "folder holding the run"],
)
def test_out_in_or_around_the_run_being_exported_is_refused(tmp_path, run, where, source, options, words):
    before = files_of(run)
    out = export(tmp_path, (run / source).resolve(), f"out={(run / where).resolve()}", "overwrite=true", *options)
    assert_one_paragraph(out, words)
    assert files_of(run) == before


@pytest.mark.parametrize("mark", [".hydra/config.yaml", "checkpoints/last.ckpt", "status.json"])
def test_out_at_another_run_is_refused(tmp_path, tiny_gan_checkpoint, mark):
    other = tmp_path / "outputs" / "other"
    (other / mark).parent.mkdir(parents=True)
    (other / mark).write_text("")
    (other / "metrics.csv").write_text("step,train/loss_g\n1,0.5\n")
    before = files_of(other)
    for out in (other, other / "model.ckpt"):
        refused = export(tmp_path, tiny_gan_checkpoint, f"out={out}", "overwrite=true")
        assert_one_paragraph(refused, [f"{'is' if out == other else 'is inside'} a genkit run directory", str(other)])
    assert files_of(other) == before


def test_a_loose_checkpoint_and_its_folder_are_refused(tmp_path, tiny_gan_checkpoint):
    loose = tmp_path / "models"
    loose.mkdir()
    source = loose / "model.ckpt"
    shutil.copy(tiny_gan_checkpoint, source)
    shutil.copy(tiny_gan_checkpoint, loose / "other.ckpt")  # a training checkpoint, not an export
    before = files_of(loose)
    cases = [
        ([f"out={source}"], ["is the checkpoint being exported"]),
        ([f"out={loose}", "format=safetensors"], ["holds the checkpoint being exported"]),
        ([f"out={loose / 'other.ckpt'}"], ["is not something genkit export wrote", "not even with overwrite=true"]),
    ]
    for options, words in cases:
        assert_one_paragraph(export(tmp_path, source, *options, "overwrite=true"), words)
    assert files_of(loose) == before


@pytest.mark.slow
def test_overwrite_replaces_only_an_earlier_export(tmp_path, tiny_gan_checkpoint):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    for out, options in ((mine, ["format=safetensors"]), (tmp_path / "notes.ckpt", [])):
        refused = export(tmp_path, tiny_gan_checkpoint, f"out={out}", "overwrite=true", *options)
        assert_one_paragraph(refused, [f"out={out} already exists", "is not something genkit export wrote"])
    assert (mine / "notes.txt").read_text() == "mine" and (tmp_path / "notes.ckpt").read_text() == "not a checkpoint"

    for out, options in ((tmp_path / "model.ckpt", []), (tmp_path / "st", ["format=safetensors"])):
        first = export(tmp_path, tiny_gan_checkpoint, f"out={out}", *options)
        assert first.returncode == 0, first.stderr[-3000:]
        again = export(tmp_path, tiny_gan_checkpoint, f"out={out}", *options)
        assert_one_paragraph(again, [f"out={out} already exists", "overwrite=true to replace it"])
        replaced = export(tmp_path, tiny_gan_checkpoint, f"out={out}", "overwrite=true", *options)
        assert replaced.returncode == 0, replaced.stderr[-3000:]

    wrong_kind = export(tmp_path, tiny_gan_checkpoint, f"out={tmp_path / 'st'}", "overwrite=true")
    assert_one_paragraph(wrong_kind, ["is an exported folder, and format=ckpt writes a file"])

    # a file added to an exported folder is the user's: the folder is no longer only an export
    (tmp_path / "st" / "README.md").write_text("my notes on this model")
    refused = export(tmp_path, tiny_gan_checkpoint, f"out={tmp_path / 'st'}", "overwrite=true", "format=safetensors")
    assert_one_paragraph(refused, ["is not something genkit export wrote"])
    assert (tmp_path / "st" / "README.md").is_file()
