"""Token streams as shards: written from a prepared text data set by `genkit prepare`, trained
on with `data=text_shards data.path=<folder or s3://...>` (genkit.data.shards).

The training split is LitData chunks of token ids laid end to end, read as blocks of
block_size + 1 tokens (LitData's TokensLoader), so one preparation serves any context length.
Validation and test are plain token files (`val.bin`, `test.bin`) fetched whole: evaluation
walks a split in order, every token once, on each process's share of its windows, which needs
the random access of a memory-mapped file (genkit.data.text.EvalWindows), not a stream; they are
a small part of a corpus.
"""

import functools
import hashlib
from pathlib import Path

import numpy as np
import torch
from litdata.streaming.item_loader import TokensLoader

from genkit.atomic import atomic_path
from genkit.data.base import GenkitDataModule
from genkit.data.shard_sources import ShardSources
from genkit.data.shards import (
    TOKENIZER,
    SplitWriter,
    fetch,
    local_cache,
)
from genkit.data.text import TextDataModule
from genkit.data.token_files import mapped_again
from genkit.data.tokenizers import load_tokenizer, save_tokenizer
from genkit.errors import GenkitError

# tokens of one item written to the training chunks (the items are laid end to end)
PIECE = 1 << 20


def _pieces(ids: np.ndarray):
    """A split PIECE tokens at a time, each copied out of a map opened for it (token_files.mapped_again:
    with one map kept open, preparing a 1 GB corpus's shards peaked at 1.53 GB, against 1.03 GB)."""
    for start in range(0, len(ids), PIECE):
        yield np.array(mapped_again(ids)[start : start + PIECE])


def write_shards(data: TextDataModule, out: Path) -> dict:
    """The prepared text data set `data` (set up: its splits memory-mapped) as token shards in
    `out`, a piece at a time; what genkit-shards.json says about them."""
    save_tokenizer(data.tokenizer, out / TOKENIZER)
    writer = SplitWriter(out / "train", tokens=True)
    train = data.ids["train"]
    for piece in _pieces(train):
        writer.add(piece)
    writer.close()
    tokens = {"train": int(len(train))}
    for split in ("val", "test"):
        if split in data.ids:
            with open(out / f"{split}.bin", "wb") as f:
                for piece in _pieces(data.ids[split]):
                    piece.tofile(f)
            tokens[split] = int(len(data.ids[split]))
    text = (out / TOKENIZER).read_text()
    return {
        "dtype": np.dtype(train.dtype).name,
        "vocab_size": int(data.vocab_size),
        "tokenizer_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "token_unit": data.token_unit,
        "lowercase": bool(data.lowercase),
        "unknown_chars": data.unknown_chars,
        "splits": tokens,
        "tokens": tokens["train"],
    }


class TokenShardsDataModule(ShardSources, TextDataModule):
    """Token shards (one folder, or several mixed by data.mix) for language models: sampling,
    prompts and checkpoints as for any text data (genkit.data.text.TextDataModule), training
    batches streamed from the shards, each process its own part."""

    file_keys = ("path",)
    kind = "tokens"

    def __init__(
        self,
        path,
        block_size: int,
        vocab_size: int,
        mix=None,
        name: str = "text_shards",
        batch_size: int = 32,
        eval_batch_size: int = 32,
        num_workers: int = 0,
        max_device_batch: int | None = None,
        seed: int = 12345,
        cache_dir: str | None = None,
        token_unit: str = "token",
        root: str | None = None,  # the data root genkit sample and eval pass: shards are where data.path says
    ):
        GenkitDataModule.__init__(self)
        self.init_sources(path, mix, cache_dir)
        self.name, self.block_size, self.vocab_size = name, block_size, vocab_size
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.max_device_batch, self.seed = max_device_batch, seed
        self.on_device, self.streams, self.token_unit = False, False, token_unit
        self.lowercase, self.unknown_chars = False, "error"  # the shards' own, once read (metas)
        self.path, self.pretrained_tokenizer, self.encoding = None, None, None
        self.tokenizer, self.tokenizer_from_checkpoint = None, False
        self.ids: dict[str, np.ndarray] = {}

    # ---- the shards -----------------------------------------------------------------------------

    def cache_dir(self) -> Path:
        return local_cache(self.shards_cache, "|".join(self.paths))

    def check_sources(self, metas: list[dict]) -> None:
        """One tokenizer for every folder, within data.vocab_size; the shards' text settings."""
        first = metas[0]
        for p, meta in zip(self.paths[1:], metas[1:], strict=True):
            if meta.get("tokenizer_sha256") != first.get("tokenizer_sha256"):
                raise GenkitError(
                    f"The shards in {p} were encoded with another tokenizer than those in {self.paths[0]}, so the same "
                    f"id means different text in each; mix only shards prepared with one tokenizer (prepare the "
                    f"others with data.pretrained_tokenizer=<a run trained on the first>)."
                )
        if self.vocab_size < first["vocab_size"]:
            raise GenkitError(
                f"data.vocab_size={self.vocab_size} is below the {first['vocab_size']} tokens of the shards in "
                f"{self.paths[0]}; leave data.vocab_size to the shards (its default)."
            )
        self.lowercase, self.unknown_chars = bool(first.get("lowercase")), str(first.get("unknown_chars", "error"))

    def setup(self, stage: str | None = None) -> None:
        if self.ids:
            return
        self.metas()
        if not self.tokenizer_from_checkpoint:
            self.tokenizer = load_tokenizer(fetch(self.paths[0], TOKENIZER, self.shards_cache))
        for split in ("val", "test"):
            ids = self._evaluation_split(split)
            if ids is not None:
                self.ids[split] = ids
        if "val" not in self.ids:
            raise GenkitError(
                f"The shards in {', '.join(self.paths)} have no validation tokens; prepare them from a data config "
                f"with a val split (data.fractions or data.splits)."
            )

    def _evaluation_split(self, split: str) -> np.ndarray | None:
        """A split of every source, end to end, memory-mapped (a single local source's own file)."""
        parts = []
        for root, meta in zip(self.paths, self.metas(), strict=True):
            count = meta["splits"].get(split)
            if count:
                parts.append((fetch(root, f"{split}.bin", self.shards_cache), count, np.dtype(meta["dtype"])))
        if not parts:
            return None
        if len(parts) == 1:
            file, count, dtype = parts[0]
            return self._mapped(file, dtype, count, self.paths[0])
        dtype = np.result_type(*(d for _, _, d in parts))
        joined = self.cache_dir() / f"{split}.bin"
        total = sum(count for _, count, _ in parts)
        if not joined.is_file() or joined.stat().st_size != total * dtype.itemsize:
            joined.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(joined) as tmp, open(tmp, "wb") as f:
                for file, count, part_dtype in parts:
                    np.asarray(self._mapped(file, part_dtype, count, str(file)), dtype=dtype).tofile(f)
        return np.memmap(joined, dtype=dtype, mode="r", shape=(total,))

    @staticmethod
    def _mapped(file: Path, dtype: np.dtype, count: int, where: str) -> np.ndarray:
        if not file.is_file() or file.stat().st_size != count * dtype.itemsize:
            raise GenkitError(
                f"{file} does not hold the {count} tokens genkit-shards.json gives it: the shard folder {where} was "
                f"not copied whole, or was damaged; copy it again, or write it again with `genkit prepare`."
            )
        return np.memmap(file, dtype=dtype, mode="r", shape=(count,))

    # ---- loaders ------------------------------------------------------------------------------

    def train_dataloader(self):
        windows = functools.partial(TokensLoader, block_size=self.block_size + 1)
        return self.streamed_training_loader("training windows of data.block_size + 1 tokens", windows)

    def on_before_batch_transfer(self, batch, dataloader_idx: int):
        batch = super().on_before_batch_transfer(batch, dataloader_idx)
        if isinstance(batch, torch.Tensor):  # a training batch: blocks of block_size + 1 ids
            blocks = batch.to(torch.int64)
            return blocks[:, :-1], blocks[:, 1:]
        return batch
