"""Prompt -> completion records as shards: written from a prepared pairs data set by `genkit
prepare data=pairs ...`, trained on with `data=pairs_shards data.path=<folder or s3://...>`
(genkit.data.shards).

The training split is LitData chunks of items {"ids": the row's token ids (uint16 or uint32),
"prompt_len": int}, one encoded record each ([eot] + prompt + separator + completion + [eot],
genkit.data.pairs), written a block of rows at a time. Training streams them, each process its own
part, and pads each batch to its longest row with only completion targets, exactly as data=pairs
does (genkit.data.pair_rows.PairBatches). Validation and test are the prepared data set's own
files (the rows, their index and the records eval scores), fetched whole: evaluation reads them
by index, shortest first, and genkit eval scores every record in order; they are a small part of
a data set.
"""

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from genkit.data.base import GenkitDataModule
from genkit.data.pair_rows import PairBatches, PairRows, read_records
from genkit.data.pairs import PairsDataModule
from genkit.data.records import MAX_RECORD_BYTES, Pairs
from genkit.data.shard_sources import ShardSources
from genkit.data.shards import TOKENIZER, SplitWriter, fetch
from genkit.data.token_files import mapped_again
from genkit.data.tokenizers import load_tokenizer, save_tokenizer
from genkit.errors import GenkitError

# tokens of the training rows read at once: memory holds a block, whatever the size of the set
BLOCK_TOKENS = 1 << 20
EVALUATION_SPLITS = ("val", "test")


# ---- writing -------------------------------------------------------------------------------------


def _split_files(split: str) -> tuple[str, ...]:
    """A split's files in a pairs cache (genkit.data.pair_rows): rows, their index, the records."""
    return f"{split}.bin", f"{split}.index.npy", f"{split}.records.jsonl"


def training_items(rows: PairRows) -> Iterator[dict[str, Any]]:
    """The rows of a split as shard items, read a block of about BLOCK_TOKENS tokens at a time
    from a map opened for each block (genkit.data.token_files.mapped_again says why)."""
    starts = rows.starts
    first = 0
    while first < len(rows):
        # the rows that end within BLOCK_TOKENS of the first's start (at least the first)
        last = int(np.searchsorted(starts, starts[first] + BLOCK_TOKENS, side="right")) - 1
        last = min(max(last, first + 1), len(rows))
        block = np.array(mapped_again(rows.ids)[starts[first] : starts[last]])
        for i in range(first, last):
            row = block[starts[i] - starts[first] : starts[i + 1] - starts[first]]
            yield {"ids": row, "prompt_len": int(rows.prompt_lens[i])}
        first = last


def write_shards(data: PairsDataModule, out: Path) -> dict:
    """The prepared pairs data set `data` (set up: its rows memory-mapped) as pair shards in `out`:
    training rows into chunks a block at a time, the cache's validation and test files copied as
    they are; what genkit-shards.json says about them."""
    save_tokenizer(data.tokenizer, out / TOKENIZER)
    train = data.rows["train"]
    writer = SplitWriter(out / "train")
    for item in training_items(train):
        writer.add(item)
    counts = {"train": writer.close()}
    cache = data.cache_dir()
    for split in EVALUATION_SPLITS:
        if split in data.rows:
            for name in _split_files(split):
                shutil.copyfile(cache / name, out / name)
            counts[split] = len(data.rows[split])
    return {
        "dtype": np.dtype(train.ids.dtype).name,
        "vocab_size": int(data.vocab_size),
        "tokenizer_sha256": hashlib.sha256((out / TOKENIZER).read_bytes()).hexdigest(),
        "token_unit": data.token_unit,
        "block_size": int(data.block_size),
        "separator": data.separator,
        "long_prompts": data.long_prompts,
        "prompt_key": data.read.prompt_key,
        "completion_key": data.read.completion_key,
        "labels": data.labels,
        "label_counts": data.label_counts,
        "longest_completion": int(data.longest_completion),
        "splits": counts,
        "rows": counts["train"],
    }


# ---- reading -------------------------------------------------------------------------------------


def keep_items(items: list) -> list:
    """collate_fn of the training loader: a batch's items as they are (rows of many lengths, which
    LitData's collation cannot stack); the data module pads them where the batch lands. Module
    level, so that DataLoader workers receive it pickled."""
    return list(items)


class PairShardsDataModule(ShardSources, PairsDataModule):
    """Pair shards (one folder, or several mixed by data.mix) for fine-tuning a language model on a
    prompt -> completion task: prompts, sampling, task scores and checkpoints as for data=pairs
    (genkit.data.pairs.PairsDataModule), training rows streamed from the shards, each process its
    own part. Validation and test (and genkit eval's task scores) read the first folder's splits.

    vocab_size, block_size and how prompts were written (token_unit, separator, long_prompts, the
    records' keys) come with the config (read from the first folder's genkit-shards.json when it is
    composed). Nothing is read from the shards until prepare_data / setup, so a checkpoint samples
    without them."""

    file_keys = ("path",)
    kind = "pairs"

    def __init__(
        self,
        path: Any,
        vocab_size: int,
        block_size: int,
        mix: Any = None,
        name: str = "pairs_shards",
        token_unit: str = "bpe",
        separator: str = "",
        long_prompts: str = "error",
        prompt_key: str = "prompt",
        completion_key: str = "completion",
        group_by_length: bool = False,
        max_record_bytes: int = MAX_RECORD_BYTES,
        batch_size: int = 32,
        eval_batch_size: int = 64,
        num_workers: int = 0,
        max_device_batch: int | None = None,
        seed: int = 12345,
        cache_dir: str | None = None,
        root: str | None = None,  # the data root genkit sample and eval pass: shards are where data.path says
    ):
        # not PairsDataModule.__init__: that one names the records' files and how to encode them, which
        # `genkit prepare` did
        GenkitDataModule.__init__(self)
        if group_by_length is not False:
            raise GenkitError(
                f"data.group_by_length={group_by_length!r}: pair shards stream their rows, each process its own part "
                f"in a shuffled order, so rows of similar length cannot be gathered into batches (data=pairs does "
                f"it from its on-disk cache); leave data.group_by_length=false."
            )
        self.init_sources(path, mix, cache_dir)
        self.name, self.vocab_size, self.block_size, self.token_unit = name, vocab_size, block_size, token_unit
        self.separator, self.long_prompts, self.group_by_length = separator, long_prompts, False
        self.read, self.max_record_bytes = Pairs(prompt_key, completion_key), max_record_bytes
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.max_device_batch, self.seed = max_device_batch, seed
        self.pretrained_tokenizer, self.given_labels = None, None
        self.tokenizer, self.tokenizer_from_checkpoint = None, False
        self.rows: dict[str, PairRows] = {}
        self.records: dict[str, list[dict]] = {}
        self.labels: list[str] | None = None
        self.longest_completion = block_size

    # ---- the shards -----------------------------------------------------------------------------

    def check_sources(self, metas: list[dict]) -> None:
        """One tokenizer, label set and separator for every folder; rows that fit data.block_size
        and ids within data.vocab_size."""
        first = metas[0]
        for p, meta in zip(self.paths[1:], metas[1:], strict=True):
            differ = [key for key in ("tokenizer_sha256", "labels", "separator") if meta.get(key) != first.get(key)]
            if differ:
                what = ", ".join({"tokenizer_sha256": "tokenizer"}.get(key, key) for key in differ)
                raise GenkitError(
                    f"The shards in {p} differ from those in {self.paths[0]} in their {what}: the same id or label "
                    f"would mean different things in each, and validation and genkit eval read {self.paths[0]}'s "
                    f"records only. Mix only pairs prepared with one tokenizer (prepare the others with "
                    f"data.pretrained_tokenizer=<a run trained on the first>), one label set (data.labels=[...]) "
                    f"and one data.separator."
                )
        for p, meta in zip(self.paths, metas, strict=True):
            if int(meta["block_size"]) > self.block_size:
                raise GenkitError(
                    f"The shards in {p} hold rows of up to {meta['block_size']} tokens (their data.block_size), "
                    f"more than data.block_size={self.block_size}; leave data.block_size to the shards (its "
                    f"default), or prepare them again with a smaller data.block_size."
                )
        if self.vocab_size < first["vocab_size"]:
            raise GenkitError(
                f"data.vocab_size={self.vocab_size} is below the {first['vocab_size']} tokens of the shards in "
                f"{self.paths[0]}; leave data.vocab_size to the shards (its default)."
            )

    def setup(self, stage: str | None = None) -> None:
        """The tokenizer (unless a checkpoint gave it), the label set, and the first folder's
        validation and test rows and records."""
        if self.rows:
            return
        metas = self.metas()
        root, first = self.paths[0], metas[0]
        if not self.tokenizer_from_checkpoint:
            self.tokenizer = load_tokenizer(fetch(root, TOKENIZER, self.shards_cache))
        self.labels = first.get("labels")
        if self.labels and all(meta.get("label_counts") for meta in metas):  # the folders share one label set
            self.label_counts = [sum(counts) for counts in zip(*(meta["label_counts"] for meta in metas), strict=True)]
        self.longest_completion = max(int(meta["longest_completion"]) for meta in metas)
        rows, records = {}, {}
        for split in EVALUATION_SPLITS:
            if split in first["splits"]:
                rows[split], records[split] = self._evaluation_split(split, int(first["splits"][split]), first["dtype"])
        if "val" not in rows:
            raise GenkitError(
                f"The shards in {root} have no validation records; write them again with `genkit prepare data=pairs "
                f"...` (which always writes a val split)."
            )
        self.rows, self.records = rows, records

    def _evaluation_split(self, split: str, count: int, dtype: str) -> tuple[PairRows, list[dict]]:
        """A split of the first folder, its files fetched whole, checked against its description."""
        root = self.paths[0]
        files = [fetch(root, name, self.shards_cache) for name in _split_files(split)]
        try:
            rows = PairRows.load(files[0].parent, split, dtype)
            records = read_records(files[2])
            size = int(rows.starts[-1]) * np.dtype(dtype).itemsize  # the bytes of ids its index gives
            whole = len(rows) == len(records) == count and files[0].stat().st_size == size
        except (OSError, ValueError, EOFError, IndexError):
            whole = False
        if not whole:
            raise GenkitError(
                f"The {split} split of the shards in {root} ({', '.join(_split_files(split))}) does not hold the "
                f"{count} records genkit-shards.json gives it: the folder was not copied whole, or was damaged; copy "
                f"it again, or write it again with `genkit prepare`."
            )
        return rows, records

    # ---- loaders ------------------------------------------------------------------------------

    def train_dataloader(self):
        return self.streamed_training_loader("training records", collate_fn=keep_items)

    def on_before_batch_transfer(self, batch, dataloader_idx: int):
        """A training batch (keep_items' list of rows) as (x, y): right-padded, only completion
        targets, as data=pairs builds it. Evaluation batches come built (PairBatches)."""
        batch = super().on_before_batch_transfer(batch, dataloader_idx)
        if isinstance(batch, list):
            rows = [(int(item["prompt_len"]), np.asarray(item["ids"]).tolist()) for item in batch]
            x, y = PairBatches(rows, self.tokenizer.eot_id).__getitems__(range(len(rows)))
            return x, y
        return batch
