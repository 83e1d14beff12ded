"""Damaged files through the real CLI: a zero-byte checkpoint, text that is not UTF-8 or not text,
a text too short for its splits, an image folder with a symlink loop. Never a traceback, never a
silently wrong result."""

from genkit.checkpoints.files import load_checkpoint
from genkit.commands.train import train
from tests.cli.test_bad_input import assert_one_paragraph
from tests.helpers import TINY_IMAGE_RUN, cli_in_process, make_cfg


def test_a_zero_byte_last_checkpoint_resumes_from_the_newest_step_checkpoint(tmp_path, tiny_data_root):
    every = "callbacks.model_checkpoint.every_n_train_steps=2"
    cfg = make_cfg(tmp_path, f"data.root={tiny_data_root}", *TINY_IMAGE_RUN, every,
                   "trainer.max_steps=6", "trainer.max_epochs=-1")  # fmt: skip
    train(cfg)
    run = tmp_path / "outputs" / "run"
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")  # a full disk, a copy cut short
    env = {"GENKIT_DATA_DIR": str(tiny_data_root)}
    sample = cli_in_process("sample", f"ckpt={run / 'checkpoints' / 'last.ckpt'}", "n=2", cwd=tmp_path, env=env)
    assert_one_paragraph(sample, ["last.ckpt is empty (0 bytes)", "step_*.ckpt"])
    out = cli_in_process("train", *TINY_IMAGE_RUN, every, "trainer.max_steps=8", "trainer.max_epochs=-1",
                         f"hydra.run.dir={run}", cwd=tmp_path, env=env)  # fmt: skip
    said = " ".join((out.stdout + out.stderr).split())
    assert out.returncode == 0, out.stderr[-3000:]
    assert "last.ckpt is damaged (empty" in said and "resuming from" in said and "step_0000006.ckpt" in said, said
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 8
