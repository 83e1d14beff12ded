"""Damaged files through the real CLI: a zero-byte checkpoint, text that is not UTF-8 or not text,
a text too short for its splits, an image folder with a symlink loop. Never a traceback, never a
silently wrong result."""

import pytest

from genkit.checkpoints.files import load_checkpoint
from genkit.commands.train import train
from tests.cli.test_bad_input import assert_one_paragraph
from tests.helpers import TINY_IMAGE_RUN, cli_in_process, make_cfg


@pytest.mark.slow
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


def text_run(tmp_path, path, *extra) -> list[str]:
    return ["train", "model=lm", "data=text", f"data.path={path}", "data.vocab_size=300", "data.block_size=8",
            "data.batch_size=4", f"data.cache_dir={tmp_path / 'cache'}", "model.net.n_layer=1", "trainer.max_steps=1",
            "trainer.accelerator=cpu", "trainer.precision=32-true", *extra]  # fmt: skip


@pytest.mark.slow
def test_text_in_another_encoding_needs_data_encoding(tmp_path):
    latin = tmp_path / "cafe.txt"
    latin.write_bytes(("Café au lait, crème brûlée.\n" * 80).encode("latin-1"))
    out = cli_in_process(*text_run(tmp_path, latin), cwd=tmp_path)
    assert_one_paragraph(out, ["cafe.txt is not UTF-8 text", "byte 0xe9", "data.encoding=<its encoding>"])
    out = cli_in_process(*text_run(tmp_path, latin, "data.encoding=latin-1"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    tokenizer = next((tmp_path / "outputs").rglob("tokenizer.json")).read_text(encoding="utf-8")
    assert "\ufffd" not in tokenizer


def test_a_folder_of_text_skips_binary_files_in_one_line(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("line of a small corpus for quick runs\n" * 60)
    (folder / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(256)) * 4)
    (folder / "random.bin").write_bytes(bytes(range(256)) * 8)
    out = cli_in_process(*text_run(tmp_path, folder), cwd=tmp_path)
    said = " ".join((out.stdout + out.stderr).split())
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Skipped 2 binary file(s)" in said and "picture.png, random.bin" in said, said[-2000:]


def test_an_image_folder_with_a_symlink_loop_leaves_the_loop_out(tmp_path):
    import numpy as np
    from PIL import Image

    folder = tmp_path / "pictures"
    (folder / "cats").mkdir(parents=True)
    for i in range(40):
        pixels = np.random.default_rng(i).integers(0, 255, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "cats" / f"{i}.png")
    (folder / "loop").symlink_to(folder / "loop")  # a -> a, where class folders are looked for
    (folder / "cats" / "up").symlink_to(folder)  # a folder linked into itself
    out = cli_in_process("train", "data=image_folder", f"data.path={folder}", "data.image_size=16",
                         "data.batch_size=8", "trainer.max_steps=1", "trainer.accelerator=cpu",
                         "trainer.precision=32-true", cwd=tmp_path)  # fmt: skip
    said = " ".join((out.stdout + out.stderr).split())
    assert out.returncode == 0 and "Traceback" not in said, out.stderr[-3000:]
    assert "Left out" in said and "loop" in said


def test_genkit_runs_says_a_corrupt_status_json_is_unreadable_and_reads_the_config(tmp_path):
    import json

    run = tmp_path / "outputs" / "gan-mnist" / "2026-01-01_00-00-00_000000"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(
        "run_name: gan-mnist\nmodel:\n  _target_: genkit.models.gan.GAN\ndata:\n  name: mnist\n"
    )
    (run / "status.json").write_text('{"status": "runn')  # cut short by a full disk
    (run / "metrics.csv").write_text("step,train/loss_g\n1,0.5\n2,0.4\n")
    out = cli_in_process("runs", str(tmp_path / "outputs"), "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    (row,) = json.loads(out.stdout)
    assert row["status"] == "unknown (status.json is unreadable)"
    assert (row["family"], row["data"], row["run"]) == ("GAN", "mnist", "gan-mnist")
