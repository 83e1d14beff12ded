"""Token shards (genkit.data.token_shards, genkit.data.shards): written from a prepared text data
set, read back whole once per epoch, a loader position that resumes exactly where training
stopped (with the batch Lightning fetched ahead not counted), and shard folders refused when
they are not what a run expects."""

import json
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from genkit.data.shards import META, read_meta, write_meta
from genkit.data.text import TextDataModule
from genkit.data.token_shards import TokenShardsDataModule, write_shards
from genkit.errors import GenkitError

BLOCK, BATCH = 15, 4


def prepared_text(tmp_path, chars: int = 6000, seed: int = 0) -> TextDataModule:
    letters = "abcdefghijklmnopqrstuvwxyz \n"
    rng = random.Random(seed)
    corpus = tmp_path / f"corpus{seed}.txt"
    corpus.write_text("".join(rng.choice(letters) for _ in range(chars)))
    options = {"fractions": {"train": 0.9, "val": 0.1}, "cache_dir": str(tmp_path / "cache"), "num_proc": 1}
    data = TextDataModule(name="text", tokenizer="char", vocab_size=64, block_size=BLOCK, path=str(corpus), **options)
    data.prepare_data()
    data.setup("fit")
    return data


def shard_folder(tmp_path, name: str = "shards", seed: int = 0):
    data = prepared_text(tmp_path, seed=seed)
    out = tmp_path / name
    out.mkdir()
    meta = write_shards(data, out)
    write_meta(out, {**meta, "kind": "tokens", "data": "text", "fingerprint": f"print{seed}"})
    return out, data


def shards_module(paths, **options) -> TokenShardsDataModule:
    first = paths if isinstance(paths, str) else paths[0]
    options.setdefault("cache_dir", str(Path(first).parent / "shards-cache"))  # mixed sources' joined splits
    module = TokenShardsDataModule(path=paths, block_size=BLOCK, vocab_size=64, batch_size=BATCH, seed=7, **options)
    # what the module asks of Lightning's trainer while it trains: one process, no accumulation
    module.trainer = SimpleNamespace(training=True, world_size=1, global_rank=0, accumulate_grad_batches=1)
    module.setup("fit")
    return module


def rows(batch) -> list[tuple[int, ...]]:
    x, y = batch
    return [tuple(r) for r in torch.cat([x, y[:, -1:]], dim=1).tolist()]


def fed(module, loader, batches: int | None = None) -> list:
    """What training sees: each batch through the module's hook (which counts it consumed), with
    one batch fetched ahead as Lightning's loop fetches it."""
    seen, it = [], iter(loader)
    ahead = next(it, None)
    while ahead is not None and (batches is None or len(seen) < batches):
        batch, ahead = ahead, next(it, None)
        seen.append(module.on_before_batch_transfer(batch, 0))
    return seen


def test_an_epoch_reads_every_window_of_the_training_tokens_once(tmp_path):
    out, data = shard_folder(tmp_path)
    module = shards_module(str(out))
    seen = [row for batch in fed(module, module.train_dataloader()) for row in rows(batch)]
    train = np.asarray(data.ids["train"], dtype=np.int64)
    windows = {tuple(train[i : i + BLOCK + 1]) for i in range(0, len(train) - BLOCK, BLOCK + 1)}
    assert len(seen) == len(set(seen)) >= len(windows) - BATCH
    assert set(seen) <= windows
    assert module.tokenizer.to_json() == data.tokenizer.to_json()
    # validation is the prepared split itself, token for token
    assert np.array_equal(np.asarray(module.ids["val"]), np.asarray(data.ids["val"]))


@pytest.mark.parametrize("workers", [0, 2])
def test_a_loader_position_resumes_with_the_batches_an_uninterrupted_run_draws(tmp_path, workers):
    out, _ = shard_folder(tmp_path)
    straight = shards_module(str(out), num_workers=workers)
    whole = [rows(b) for b in fed(straight, straight.train_dataloader())]
    for stop in (1, 5):
        first = shards_module(str(out), num_workers=workers)
        loader = first.train_dataloader()
        before = [rows(b) for b in fed(first, loader, stop)]
        state = json.loads(json.dumps(loader.state_dict()))  # as a checkpoint keeps it
        resumed = shards_module(str(out), num_workers=workers)
        again = resumed.train_dataloader()
        again.load_state_dict(state)
        after = [rows(b) for b in fed(resumed, again)]
        assert before + after == whole, f"stopped after {stop} batches"


def test_a_position_at_an_epoch_end_resumes_with_the_next_epoch(tmp_path):
    out, _ = shard_folder(tmp_path)
    straight = shards_module(str(out))
    loader = straight.train_dataloader()
    fed(straight, loader)
    second = [rows(b) for b in fed(straight, loader)]
    first = shards_module(str(out))
    stopped = first.train_dataloader()
    fed(first, stopped)
    resumed = shards_module(str(out))
    again = resumed.train_dataloader()
    again.load_state_dict(stopped.state_dict())
    assert [rows(b) for b in fed(resumed, again)] == second


def test_mixed_sources_follow_their_weights(tmp_path):
    a, _ = shard_folder(tmp_path, "a", seed=0)
    b, _ = shard_folder(tmp_path, "b", seed=1)
    alone = shards_module(str(a))
    a_rows = {r for batch in fed(alone, alone.train_dataloader()) for r in rows(batch)}
    module = shards_module([str(a), str(b)], mix=[3, 1])
    # a batch comes whole from one source, drawn 3 to 1 (genkit.data.shard_mix): over 300 batches
    seen = [r for batch in drawn(module, module.train_dataloader(), 300) for r in batch]
    share = sum(r in a_rows for r in seen) / len(seen)
    assert 0.65 < share < 0.85, share
    # validation: both sources' splits, end to end
    assert len(module.ids["val"]) == sum(len(shards_module(str(p)).ids["val"]) for p in (a, b))


def test_shard_folders_that_are_not_what_a_run_expects_are_refused(tmp_path):
    out, _ = shard_folder(tmp_path)
    meta = json.loads((out / META).read_text())
    with pytest.raises(GenkitError, match="holds no genkit-shards.json"):
        read_meta(str(tmp_path / "cache"))
    with pytest.raises(GenkitError, match="hold tokens .* not pictures"):
        read_meta(str(out), "pictures")
    (out / META).write_text(json.dumps({**meta, "version": 99}))
    with pytest.raises(GenkitError, match="format version 99; this genkit reads version 1"):
        read_meta(str(out), "tokens")
    (out / META).write_text("{not json")
    with pytest.raises(GenkitError, match="is damaged"):
        read_meta(str(out), "tokens")
    (out / META).write_text(json.dumps(meta))
    (out / "val.bin").write_bytes(b"\0" * 10)
    with pytest.raises(GenkitError, match="was\\s+not copied whole, or was damaged"):
        shards_module(str(out))


@pytest.mark.parametrize("mix", [[0, 1], [-1, 2], ["a", 1], [float("nan"), 1], [1]])
def test_mix_weights_must_be_one_positive_number_per_source(tmp_path, mix):
    with pytest.raises(GenkitError, match="data.mix"):
        TokenShardsDataModule(path=["a", "b"], block_size=BLOCK, vocab_size=64, mix=mix)


def test_a_resumed_run_on_other_shards_is_refused(tmp_path):
    a, _ = shard_folder(tmp_path, "a", seed=0)
    b, _ = shard_folder(tmp_path, "b", seed=1)
    state = shards_module(str(a)).state_dict()
    assert state["shards"] == ["print0"] and "tokenizer" in state
    other = shards_module(str(b))  # a training run restoring its state (sample and eval have no trainer)
    with pytest.raises(GenkitError, match="trained on other shards"):
        other.load_state_dict(state)
    shards_module(str(a)).load_state_dict(state)
    sampling = shards_module(str(b))
    sampling.trainer = None
    sampling.load_state_dict(state)


def drawn(module, loader, n: int) -> list:
    """n batches as training draws them, pass after pass of the loader."""
    seen: list = []
    while len(seen) < n:
        got = [rows(batch) for batch in fed(module, loader, n - len(seen))]
        if not got:
            break
        seen += got
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("mix", [[3, 1], None])
@pytest.mark.parametrize("workers", [0, 2])
def test_mixed_sources_resume_with_the_batches_an_uninterrupted_run_draws(tmp_path, mix, workers):
    a, _ = shard_folder(tmp_path, "a", seed=0)
    b, _ = shard_folder(tmp_path, "b", seed=1)
    sources = [str(a), str(b)]
    straight = shards_module(sources, mix=mix, num_workers=workers)
    loader = straight.train_dataloader()
    epoch = len(loader)
    # two epochs: with weights, a source drawn more than its share runs out and starts again
    whole = drawn(straight, loader, 2 * epoch)
    assert len(whole) == 2 * epoch
    for stop in (1, 7, epoch, epoch + 3):
        first = shards_module(sources, mix=mix, num_workers=workers)
        stopped = first.train_dataloader()
        before = drawn(first, stopped, stop)
        resumed = shards_module(sources, mix=mix, num_workers=workers)
        again = resumed.train_dataloader()
        again.load_state_dict(stopped.state_dict())
        assert before + drawn(resumed, again, 2 * epoch - stop) == whole, f"stopped after {stop} batches"
