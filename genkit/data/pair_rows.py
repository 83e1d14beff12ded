"""Encoded prompt -> completion records kept on disk, not in Python lists: the rows of a split
as one memory-mapped array of token ids, the offset where each row starts and the length of its
prompt (genkit.data.pairs writes them once per data set and settings, then reads them).

A batch is made from its rows only, so a data set of any size trains with memory for a batch.
"""

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from genkit.loss_targets import IGNORE_INDEX

# bump when the files' layout changes, so that old caches are not read (2: meta.json counts the labels)
PAIR_CACHE_VERSION = 2


class PairRows:
    """The rows of a split: row i is (prompt length, ids[starts[i]:starts[i + 1]])."""

    def __init__(self, ids: np.ndarray, starts: np.ndarray, prompt_lens: np.ndarray):
        self.ids, self.starts, self.prompt_lens = ids, starts, prompt_lens

    @classmethod
    def load(cls, folder: Path, split: str, dtype: str) -> "PairRows":
        index = np.load(folder / f"{split}.index.npy")  # (N + 1, 2): row starts, prompt lengths
        count = int(index[-1, 0])
        ids = np.memmap(folder / f"{split}.bin", dtype=dtype, mode="r", shape=(count,)) if count else np.zeros(0)
        return cls(ids, index[:, 0], index[:-1, 1])

    def __len__(self) -> int:
        return len(self.prompt_lens)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        return int(self.prompt_lens[i]), self.ids[self.starts[i] : self.starts[i + 1]].tolist()

    def lengths(self) -> torch.Tensor:
        return torch.from_numpy(np.diff(self.starts).astype(np.int64))


class PairRowsWriter:
    """Appends encoded rows of one split to <folder>/<split>.bin and its index."""

    def __init__(self, folder: Path, split: str, dtype: str):
        self.folder, self.split, self.dtype = folder, split, dtype
        self.file = open(folder / f"{split}.bin", "wb")  # noqa: SIM115 (closed by finish)
        self.index = [(0, 0)]
        self.tokens = 0

    def append(self, prompt_len: int, ids: Sequence[int]) -> None:
        self.file.write(np.asarray(ids, dtype=self.dtype).tobytes())
        self.tokens += len(ids)
        self.index[-1] = (self.index[-1][0], prompt_len)
        self.index.append((self.tokens, 0))

    def finish(self) -> int:
        self.file.close()
        np.save(self.folder / f"{self.split}.index.npy", np.asarray(self.index, dtype=np.int64))
        return len(self.index) - 1


class PairBatches(Dataset):
    """Rows (prompt_len, ids) -> right-padded (x, y) with only completion targets; `order` maps
    item k to row order[k] (evaluation reads the rows shortest first)."""

    def __init__(
        self, rows: PairRows | Sequence[tuple[int, list[int]]], pad_id: int, order: Sequence[int] | None = None
    ):  # noqa: E501
        self.rows, self.pad_id, self.order = rows, pad_id, order

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [self.rows[int(self.order[i]) if self.order is not None else i] for i in indices]
        T = max(len(ids) for _, ids in rows) - 1
        x = torch.full((len(rows), T), self.pad_id, dtype=torch.long)
        y = torch.full((len(rows), T), IGNORE_INDEX, dtype=torch.long)
        for b, (prompt_len, ids) in enumerate(rows):
            seq = torch.tensor(ids, dtype=torch.long)
            x[b, : len(ids) - 1] = seq[:-1]
            # y[i] = ids[i + 1]: positions up to the prompt's last token predict prompt tokens (no loss);
            # from there on each predicts a completion token or the closing eot
            y[b, prompt_len - 1 : len(ids) - 1] = seq[prompt_len:]
        return x, y

    def __getitem__(self, i: int):
        x, y = self.__getitems__([i])
        return x[0], y[0]


def write_records(path: Path, records: list[dict]) -> None:
    """The records that eval scores (val, test), as JSON Lines: rows whose values JSON cannot hold
    (a Parquet timestamp) are kept as their text."""
    with open(path, "w") as f:
        for record in records:
            f.write(json.dumps(record, default=str) + "\n")


def read_records(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f]
