"""A damaged weights file in a Hugging Face folder (model.init_from) and a full disk that torch or
safetensors report as something other than an OSError: one paragraph that names the file, never
Hydra's "Error executing job" or a traceback."""

import pytest
import torch

from genkit.checkpoints.files import AtomicCheckpointIO, CheckpointWriteError, load_checkpoint
from tests.cli.test_bad_input import assert_one_paragraph
from tests.helpers import HF_TEXT, TINY_IMAGE_RUN, cli_in_process, hf_text_run, write_tiny_hf_model

transformers = pytest.importorskip("transformers")

# what torch's zip writer raises when the disk fills during torch.save
TORCH_FULL_DISK = (
    "[enforce fail at inline_container.cc:858] . PytorchStreamWriter failed writing file data/0: file write failed"
)


def tiny_gpt2_folder(folder):
    """A Hugging Face GPT-2 folder (config.json, model.safetensors, tokenizer.json) for genkit's own
    transformer, 2 layers 32 wide."""
    from genkit.data.tokenizers import BPETokenizer

    tokenizer = BPETokenizer.fit(HF_TEXT, vocab_size=320)
    config = transformers.GPT2Config(vocab_size=tokenizer.vocab_size, n_positions=64, n_embd=32, n_layer=2, n_head=2)
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.tokenizer.save(str(folder / "tokenizer.json"))
    return folder


@pytest.mark.parametrize("network", ["gpt2", "hf"])
def test_a_truncated_model_safetensors_in_init_from_is_named(tmp_path, network):
    """genkit's transformer reads GPT-2 weights itself; model/lm_net@model.net=hf has transformers
    read them: both name the file."""
    if network == "gpt2":
        folder = tiny_gpt2_folder(tmp_path / "tiny-gpt2")
        args = [*hf_text_run(tmp_path, folder)]
        args.remove("model/lm_net@model.net=hf")
    else:
        folder = write_tiny_hf_model(tmp_path / "tiny-llama")
        args = hf_text_run(tmp_path, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # a download or copy cut short
    out = cli_in_process("train", *args, cwd=tmp_path)
    assert_one_paragraph(out, [f"The weights file {weights} cannot be read", "damaged", "model.init_from"])


def test_torch_reporting_a_full_disk_as_a_runtime_error_is_a_failed_write(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    target = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, target)

    def full_disk(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise RuntimeError(TORCH_FULL_DISK)

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointWriteError, match="file write failed.*free space on its disk"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, target)

    def bug(obj, f, *args, **kwargs):
        raise RuntimeError("a bug in genkit, not a full disk")

    monkeypatch.setattr(torch, "save", bug)
    with pytest.raises(RuntimeError, match="a bug in genkit"):  # not passed off as a full disk
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, target)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(target)["state_dict"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_a_full_disk_during_training_is_one_paragraph(tmp_path, tiny_data_root, monkeypatch):
    def full_disk(obj, f, *args, **kwargs):
        raise RuntimeError(TORCH_FULL_DISK)

    monkeypatch.setattr(torch, "save", full_disk)
    run = tmp_path / "run"
    out = cli_in_process("train", *TINY_IMAGE_RUN, f"hydra.run.dir={run}", cwd=tmp_path,
                         env={"GENKIT_DATA_DIR": str(tiny_data_root)})  # fmt: skip
    assert_one_paragraph(out, ["Could not write the checkpoint", "file write failed", "free space on its disk"])
    assert not list(run.rglob(".*.tmp"))


def test_a_full_disk_during_a_folder_export_is_one_paragraph(tmp_path, tiny_gan_checkpoint, monkeypatch):
    import safetensors.torch

    def full_disk(*args, **kwargs):  # as safetensors words an ENOSPC
        raise Exception('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left '
                        'on device" })')  # fmt: skip

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    out = cli_in_process("export", f"ckpt={tiny_gan_checkpoint}", "format=safetensors", "out=st", cwd=tmp_path)
    assert_one_paragraph(out, ["Could not write the export to st", "No space left on device"])
    assert not list(tmp_path.iterdir())
