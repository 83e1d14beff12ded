"""A checkpoint never chooses which of your files genkit reads: a data path stored in it is used
only if `genkit train` on this machine wrote it (signed, genkit.checkpoints.provenance), else the
user passes data_path=. And a checkpoint that names the standard library is never to be trusted."""

import sys

import pytest
import torch

from tests.cli.test_bad_input import assert_one_paragraph
from tests.helpers import cli_in_process, tiny_text_run

OPENED: list[str] = []


def _audit(event: str, args) -> None:
    if event == "open" and args and isinstance(args[0], str | bytes) and "secret" in str(args[0]):
        OPENED.append(str(args[0]))


sys.addaudithook(_audit)  # for the life of the test process; it only records opens of *secret* files


def strangers_copy(ckpt, dest, **data) -> str:
    """The checkpoint as a stranger could ship it: its stored data config edited, no stamp of ours."""
    checkpoint = torch.load(ckpt, weights_only=True)
    checkpoint["genkit"]["config"]["data"].update(data)
    checkpoint["genkit"].pop("data_stamp", None)
    torch.save(checkpoint, dest)
    return str(dest)


def test_eval_never_opens_a_file_that_a_strangers_checkpoint_names(tmp_path, tiny_gpt_checkpoint):
    secret = tmp_path / "secret_passwords.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n" * 200)
    ckpt = strangers_copy(tiny_gpt_checkpoint, tmp_path / "stranger.ckpt", path=str(secret), unknown_chars="drop")
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    OPENED.clear()
    out = cli_in_process("eval", f"ckpt={ckpt}", cwd=tmp_path, env=env)
    assert_one_paragraph(out, ["data.path=", "secret_passwords.txt", "not written by `genkit train` on this machine",
                               "data_path=<your copy"])  # fmt: skip
    sampled = cli_in_process("sample", f"ckpt={ckpt}", "n=1", f"out={tmp_path / 's.txt'}", cwd=tmp_path, env=env)
    assert sampled.returncode == 0, sampled.stderr[-3000:]
    assert OPENED == []
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.bin"))
    # the user names their own copy of the data: it is read, and scored
    corpus = tmp_path / "my_corpus.txt"
    corpus.write_text("\n".join(f"line {i % 37} of a small corpus for quick runs" for i in range(300)))
    out = cli_in_process("eval", f"ckpt={ckpt}", f"data_path={corpus}", f"out={tmp_path / 'e.json'}", cwd=tmp_path,
                         env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert OPENED == []


def test_eval_of_a_checkpoint_trained_here_reads_its_own_data(tmp_path, tiny_gpt_checkpoint):
    out = cli_in_process("eval", f"ckpt={tiny_gpt_checkpoint}", f"out={tmp_path / 'e.json'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]


def test_a_stamp_does_not_travel_to_another_path(tmp_path, tiny_gpt_checkpoint):
    """Our own signed checkpoint, its data.path edited: the stamp no longer matches."""
    checkpoint = torch.load(tiny_gpt_checkpoint, weights_only=True)
    assert checkpoint["genkit"]["data_stamp"]
    checkpoint["genkit"]["config"]["data"]["path"] = str(tmp_path / "secret_other.txt")
    torch.save(checkpoint, tmp_path / "edited.ckpt")
    out = cli_in_process("eval", f"ckpt={tmp_path / 'edited.ckpt'}", cwd=tmp_path)
    assert_one_paragraph(out, ["secret_other.txt", "data_path="])


def test_a_checkpoint_naming_the_standard_library_gets_no_advice_to_trust_it(tmp_path, tiny_gan_checkpoint):
    for target in ("os.system", "builtins.eval"):
        checkpoint = torch.load(tiny_gan_checkpoint, weights_only=True)
        checkpoint["genkit"]["config"]["model"]["generator"] = {"_target_": target, "command": "touch /tmp/x"}
        torch.save(checkpoint, tmp_path / "altered.ckpt")
        out = cli_in_process("sample", f"ckpt={tmp_path / 'altered.ckpt'}", cwd=tmp_path)
        assert_one_paragraph(out, [f"`{target}`", "was altered to run code"])
        assert "trusted_targets=[" not in out.stderr


def _secret_records(folder) -> dict[str, str]:
    """train/val/test JSONL files named secret_*: what a stranger's pairs checkpoint could point at."""
    from tests.pairs_helpers import write_tiny_pairs

    tiny = write_tiny_pairs(folder / "tiny")
    files = {}
    for split in ("train", "val", "test"):
        files[split] = str(folder / f"secret_{split}.jsonl")
        (folder / f"secret_{split}.jsonl").write_text((tiny / f"{split}.jsonl").read_text())
    return files


def _saved_dataset(folder, column: str, rows: list[str]) -> str:
    import datasets

    splits = {split: datasets.Dataset.from_dict({column: rows}) for split in ("train", "validation")}
    datasets.DatasetDict(splits).save_to_disk(str(folder))
    return str(folder)


def _sources(tmp_path) -> dict[str, list[str]]:
    """One run of each data module's file-naming keys (data=pairs: files, dataset; data=hf_text:
    dataset as a save_to_disk folder, data_files of a builder), each naming secret_* files."""
    from tests.pairs_helpers import tiny_pairs_run

    pairs_run = [o for o in tiny_pairs_run(tmp_path) if not o.startswith("data.path=")]
    files = _secret_records(tmp_path)
    flow = ", ".join(f"{split}: {path}" for split, path in files.items())
    lines = [f"line {i % 37} of a small corpus for quick runs" for i in range(300)]
    pair_rows = [
        {"prompt": f"item {i} starts {w[:2]}", "completion": w} for i, w in enumerate(["red", "green", "blue"] * 20)
    ]
    import datasets

    secret_ds = tmp_path / "secret_pairs_dataset"
    datasets.DatasetDict(
        {split: datasets.Dataset.from_list(pair_rows) for split in ("train", "validation", "test")}
    ).save_to_disk(str(secret_ds))
    corpus = tmp_path / "secret_corpus.txt"
    corpus.write_text("\n".join(lines))
    text_ds = _saved_dataset(tmp_path / "secret_text_dataset", "text", lines)
    text_run = [o for o in tiny_text_run(tmp_path) if not o.startswith(("data=", "data.path="))]
    return {
        "pairs files": [*pairs_run, f"data.files={{{flow}}}"],
        "pairs dataset": [*pairs_run, f"data.dataset={secret_ds}"],
        "hf_text dataset": [*text_run, "data=hf_text", f"data.dataset={text_ds}"],
        "hf_text data_files": [*text_run, "data=hf_text", "data.dataset=text", f"data.data_files={corpus}"],
    }


@pytest.mark.slow
@pytest.mark.parametrize("source", ["pairs files", "pairs dataset", "hf_text dataset", "hf_text data_files"])
def test_a_checkpoint_from_another_machine_never_opens_the_files_its_data_keys_name(tmp_path, monkeypatch, source):
    """Trained here with this machine's key; evaluated as another machine would see it (another
    key): every data key that names files (GenkitDataModule.file_keys) is refused, none opened."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    here, elsewhere = tmp_path / "here.key", tmp_path / "elsewhere.key"
    overrides = _sources(tmp_path)[source]
    trained = cli_in_process("train", *overrides, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path,
                             env={"GENKIT_KEY_FILE": str(here)})  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    OPENED.clear()
    out = cli_in_process("eval", f"ckpt={ckpt}", cwd=tmp_path, env={"GENKIT_KEY_FILE": str(elsewhere)})
    key = source.split()[1]
    assert_one_paragraph(out, [f"data.{key}=", "secret_", "not written by `genkit train` on this machine",
                               "data_path=<your copy"])  # fmt: skip
    assert out.returncode == 2
    sampled = cli_in_process("sample", f"ckpt={ckpt}", "n=1", f"out={tmp_path / 's.txt'}", 'prompt="item 1"',
                             cwd=tmp_path, env={"GENKIT_KEY_FILE": str(elsewhere)})  # fmt: skip
    assert sampled.returncode == 0, sampled.stderr[-3000:]
    assert OPENED == []
    # on the machine that trained it, the same checkpoint reads its own data again
    ours = cli_in_process("eval", f"ckpt={ckpt}", f"out={tmp_path / 'e.json'}", cwd=tmp_path,
                          env={"GENKIT_KEY_FILE": str(here)})  # fmt: skip
    assert ours.returncode == 0, ours.stderr[-3000:]
    # the hook does see these opens (the builder of data_files reads datasets' own cache instead)
    assert OPENED != [] or source == "hf_text data_files"
