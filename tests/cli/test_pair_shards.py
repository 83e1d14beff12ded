"""Prompt -> completion records as shards through the real CLI: `genkit prepare data=pairs`, a GPT
trained on `data=pairs_shards` and resumed mid-epoch on exactly the batches of an uninterrupted
run, and `genkit eval` scoring the task from the records the shards keep."""

import json
import shutil

import pytest

from genkit.commands.train import train
from genkit.data.shards import META
from tests.helpers import assert_resumed_run_draws_the_batches_of_a_straight_one, cli_in_process, make_cfg
from tests.pairs_helpers import write_tiny_pairs

TINY = ["model=lm", "data=pairs_shards", "data.batch_size=8", "data.eval_batch_size=8", "model.net.n_layer=1",
        "model.net.n_embd=32", "trainer.accelerator=cpu", "trainer.precision=32-true"]  # fmt: skip


@pytest.fixture(scope="module")
def pair_shards(tmp_path_factory):
    """Shards of a tiny label task (60 training records: 7 batches of 8 an epoch)."""
    folder = tmp_path_factory.mktemp("prepared")
    records = write_tiny_pairs(folder / "records", "labels")
    out = cli_in_process("prepare", "data=pairs", f"data.path={records}", "data.vocab_size=300",
                         "data.block_size=24", f"data.cache_dir={folder / 'cache'}", f"out={folder / 'shards'}",
                         cwd=folder)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "genkit train data=pairs_shards data.path=" in out.stdout
    return folder / "shards"


def test_prepare_writes_the_training_rows_as_chunks_and_the_evaluation_files_whole(pair_shards):
    meta = json.loads((pair_shards / META).read_text())
    assert meta["kind"] == "pairs" and meta["data"] == "pairs"
    assert meta["splits"] == {"train": 60, "val": 12, "test": 12}
    assert meta["labels"] == ["blue", "green", "red"] and meta["block_size"] == 24 and meta["vocab_size"] == 300
    assert (pair_shards / "train" / "index.json").is_file() and (pair_shards / "tokenizer.json").is_file()
    for split in ("val", "test"):
        for suffix in (".bin", ".index.npy", ".records.jsonl"):
            assert (pair_shards / f"{split}{suffix}").is_file()


@pytest.mark.slow
def test_a_run_on_pair_shards_resumes_mid_epoch_on_the_batches_of_an_uninterrupted_one_and_evaluates(
    tmp_path, pair_shards
):
    common = [*TINY, f"data.path={pair_shards}", "trainer.max_epochs=3", "trainer.val_check_interval=4",
              "++trainer.limit_val_batches=1"]  # fmt: skip
    # 7 batches an epoch: stopped mid-epoch, resumed into the next
    run = assert_resumed_run_draws_the_batches_of_a_straight_one(tmp_path, common, stop=3, steps=10)
    out = cli_in_process("eval", f"ckpt={run}", "trusted_targets=[tests.helpers.]", cwd=tmp_path)  # the recorder
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((run / "eval.json").read_text())
    assert report["test/records"] == 12
    for key in ("test/accuracy", "test/macro_f1", "test/exact_match", "test/loss"):
        assert report[key] >= 0, key
    assert set(report["test/classification_report"]["per_label"]) == {"red", "green", "blue"}


@pytest.mark.slow
def test_a_checkpoint_of_a_pair_shards_run_completes_prompts_without_the_shards(tmp_path, pair_shards):
    shards = tmp_path / "shards"
    shutil.copytree(pair_shards, shards)
    train(make_cfg(tmp_path, *TINY, f"data.path={shards}", "trainer.max_steps=1", "++trainer.limit_val_batches=1"))
    shutil.rmtree(shards)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "item 3 starts re", "id": 7}\n')
    preds = tmp_path / "preds.jsonl"
    out = cli_in_process("sample", f"ckpt={tmp_path / 'outputs' / 'run'}", f"inputs={prompts}", f"out={preds}",
                         "temperature=0", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    assert [r["id"] for r in rows] == [7] and isinstance(rows[0]["prediction"], str)
