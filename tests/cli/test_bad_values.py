"""Values that used to crash deep inside PyTorch or Lightning leave no run directory behind, and
trainer.max_steps=-1 says what it means."""

import pytest

from tests.cli.test_bad_input import assert_one_paragraph
from tests.helpers import TINY_IMAGE_RUN, cli_in_process, tiny_text_run


@pytest.mark.parametrize("override", ["data.block_size=0", "model.net.n_embd=0"])
def test_a_refused_size_leaves_no_run_directory(tmp_path, override):
    out = cli_in_process("train", *tiny_text_run(tmp_path), override, cwd=tmp_path)
    assert_one_paragraph(out, [override, "whole number of at least 1"])
    assert not (tmp_path / "outputs").exists(), list((tmp_path / "outputs").rglob("*"))


def test_max_steps_minus_one_says_it_trains_until_max_epochs(tmp_path, tiny_data_root):
    env = {"GENKIT_DATA_DIR": str(tiny_data_root)}
    out = cli_in_process("train", *TINY_IMAGE_RUN, "trainer.max_steps=-1", "trainer.max_epochs=1",
                         "trainer.limit_train_batches=2", cwd=tmp_path, env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    said = " ".join((out.stdout + out.stderr).split())
    assert "trainer.max_steps=-1 means no step limit: this run trains for 1 epochs" in said, said[-2000:]


def test_many_samples_are_generated_in_batches_with_progress(tmp_path, tiny_gan_checkpoint):
    data_root = tiny_gan_checkpoint.parents[3] / "data"
    out = cli_in_process("sample", f"ckpt={tiny_gan_checkpoint}", "n=300", f"out={tmp_path / 'grid.png'}",
                         f"data_root={data_root}", cwd=tmp_path)  # fmt: skip
    said = " ".join((out.stdout + out.stderr).split())
    assert out.returncode == 0, out.stderr[-3000:]
    assert "generating 300 samples: batch 2/2" in said and "Wrote 300 samples" in said, said[-2000:]
