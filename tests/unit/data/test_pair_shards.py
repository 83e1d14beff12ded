"""Pair shards (genkit.data.pair_shards): written from a prepared pairs data set, an epoch that
yields every training record once as the (x, y) data=pairs builds from it, validation the
prepared rows and records themselves, and folders that cannot be mixed refused."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from genkit.data.pair_rows import PairBatches
from genkit.data.pair_shards import PairShardsDataModule, write_shards
from genkit.data.pairs import PairsDataModule
from genkit.data.shards import META, write_meta
from genkit.errors import GenkitError
from genkit.loss_targets import IGNORE_INDEX
from tests.pairs_helpers import write_tiny_pairs

BATCH = 4


def prepared_pairs(tmp_path, task: str = "labels", **options) -> PairsDataModule:
    folder = write_tiny_pairs(tmp_path / f"records-{task}", task)
    data = PairsDataModule(name="pairs", tokenizer="char", vocab_size=64, block_size=24, path=str(folder),
                           cache_dir=str(tmp_path / "cache"), **options)  # fmt: skip
    data.setup("fit")
    return data


def shard_folder(tmp_path, name: str = "shards", task: str = "labels", **options):
    data = prepared_pairs(tmp_path, task, **options)
    out = tmp_path / name
    out.mkdir()
    meta = write_shards(data, out)
    write_meta(out, {**meta, "kind": "pairs", "data": "pairs", "fingerprint": f"print-{name}"})
    return out, data


def shards_module(paths, **options) -> PairShardsDataModule:
    module = PairShardsDataModule(path=paths, vocab_size=64, block_size=24, batch_size=BATCH, seed=7, **options)
    # what the module asks of Lightning's trainer while it trains: one process, no accumulation
    module.trainer = SimpleNamespace(training=True, world_size=1, global_rank=0, accumulate_grad_batches=1)
    module.setup("fit")
    return module


def fed(module, loader) -> list:
    """Each training batch through the module's hook, with one fetched ahead as Lightning does."""
    seen, it = [], iter(loader)
    ahead = next(it, None)
    while ahead is not None:
        batch, ahead = ahead, next(it, None)
        seen.append(module.on_before_batch_transfer(batch, 0))
    return seen


def padded_rows(x: torch.Tensor, y: torch.Tensor) -> list[tuple]:
    """Each row of a batch as (inputs, targets) without the padding, comparable across batches."""
    found = []
    for xs, ys in zip(x.tolist(), y.tolist(), strict=True):
        length = max(i for i, t in enumerate(ys) if t != IGNORE_INDEX) + 1  # the last target: the closing eot
        found.append((tuple(xs[:length]), tuple(ys[:length])))
    return found


@pytest.mark.parametrize("workers", [0, 2])
def test_an_epoch_yields_every_training_row_once_as_data_pairs_builds_it(tmp_path, workers):
    out, data = shard_folder(tmp_path)
    module = shards_module(str(out), num_workers=workers)
    batches = fed(module, module.train_dataloader())
    train = data.rows["train"]
    assert len(batches) == len(train) // BATCH
    seen = []
    for x, y in batches:
        assert x.dtype == y.dtype == torch.long and x.shape == y.shape
        seen += padded_rows(x, y)
    alone = PairBatches(train, data.tokenizer.eot_id)  # each training row as data=pairs builds it
    expected = {row for i in range(len(train)) for row in padded_rows(*alone.__getitems__([i]))}
    assert len(seen) == len(set(seen)) == len(train) // BATCH * BATCH
    assert set(seen) <= expected
    assert module.tokenizer.to_json() == data.tokenizer.to_json()
    assert module.labels == data.labels == ["blue", "green", "red"]
    # validation and test are the prepared rows and records themselves
    for split in ("val", "test"):
        assert np.array_equal(module.rows[split].ids, data.rows[split].ids)
        assert module.task_records(split) == data.task_records(split)


def test_a_training_batch_is_the_one_pair_batches_builds_from_its_rows(tmp_path):
    out, data = shard_folder(tmp_path, task="text")
    module = shards_module(str(out))
    items = next(iter(module.train_dataloader()))
    assert isinstance(items, list) and len(items) == BATCH
    rows = [(int(item["prompt_len"]), item["ids"].tolist()) for item in items]
    x, y = module.on_before_batch_transfer(items, 0)
    want_x, want_y = PairBatches(rows, data.tokenizer.eot_id).__getitems__(range(BATCH))
    assert torch.equal(x, want_x) and torch.equal(y, want_y)
    # and each row is one of the prepared training rows, as data=pairs reads it
    prepared = {(p, tuple(ids)) for p, ids in data.rows["train"][:]}
    assert {(p, tuple(ids)) for p, ids in rows} <= prepared


def lightning_epoch(module, loader, done: int = 0) -> list[float]:
    """An epoch as Lightning's loop draws it when the loader has a length: the batches left of its
    len(loader), without asking for one more (so LitData's iteration is left unfinished)."""
    it, sums = iter(loader), []
    for _ in range(len(loader) - done):
        x, _ = module.on_before_batch_transfer(next(it), 0)
        sums.append(float(x.float().sum()))
    return sums


def test_a_run_resumed_mid_epoch_goes_on_into_the_next_epoch_as_an_uninterrupted_one(tmp_path):
    out, _ = shard_folder(tmp_path)
    straight = shards_module(str(out))
    loader = straight.train_dataloader()
    whole = [lightning_epoch(straight, loader) for _ in range(2)]
    first = shards_module(str(out))
    stopped = first.train_dataloader()
    it = iter(stopped)
    for _ in range(3):
        first.on_before_batch_transfer(next(it), 0)
    resumed = shards_module(str(out))
    again = resumed.train_dataloader()
    again.load_state_dict(json.loads(json.dumps(stopped.state_dict())))
    rest = lightning_epoch(resumed, again, done=3)
    # LitData alone would start the next epoch from the restored place again (shards.ShardLoader)
    assert [rest, lightning_epoch(resumed, again)] == [whole[0][3:], whole[1]]


def test_mixed_folders_yield_both_and_validation_reads_the_first(tmp_path):
    a, data = shard_folder(tmp_path, "a")
    b, _ = shard_folder(tmp_path, "b")  # the same records and tokenizer, written again
    module = shards_module([str(a), str(b)], mix=[1, 1])
    batches = fed(module, module.train_dataloader())
    assert len(batches) >= 2 and all(x.shape == y.shape for x, y in batches)
    assert module.task_records("val") == data.task_records("val")


def test_folders_that_cannot_be_mixed_are_refused(tmp_path):
    a, _ = shard_folder(tmp_path, "a")
    b, _ = shard_folder(tmp_path / "other", "b", task="text")  # another tokenizer and no label set
    with pytest.raises(GenkitError, match=r"differ from those in .* in their tokenizer, labels"):
        shards_module([str(a), str(b)])
    meta = json.loads((b / META).read_text())
    (b / META).write_text(json.dumps({**json.loads((a / META).read_text()), "block_size": 99}))
    with pytest.raises(GenkitError, match="rows of up to 99 tokens"):
        shards_module([str(a), str(b)])
    (b / META).write_text(json.dumps({**meta, "kind": "tokens"}))
    with pytest.raises(GenkitError, match="hold tokens .* not pairs"):
        shards_module([str(a), str(b)])


def test_damaged_evaluation_files_and_group_by_length_are_refused(tmp_path):
    out, _ = shard_folder(tmp_path)
    (out / "val.bin").write_bytes(b"\0" * 10)
    with pytest.raises(GenkitError, match="val split of the shards .* not copied whole"):
        shards_module(str(out))
    with pytest.raises(GenkitError, match="data.group_by_length=True: pair shards stream"):
        PairShardsDataModule(path=str(out), vocab_size=64, block_size=24, group_by_length=True)
