"""Several shard folders trained on as one (data.mix): each batch is drawn whole from one folder,
chosen by a generator seeded with the run's seed and the epoch, and each folder streams through
its own resumable loader (genkit.data.shards.ShardLoader).

Written here rather than with LitData's CombinedStreamingDataset, which mixes item by item:
its position restored from a checkpoint did not reproduce the batches of an uninterrupted run
(measured with one process and with two DataLoader workers, with and without weights), while
every folder's own loader does. A batch from one folder at a time keeps that exactness: the
mixed position is the choices made so far plus each folder's own position.

An epoch is as many batches as the folders hold together. With weights, each batch's folder is
drawn with those probabilities, and a folder that runs out starts its next pass (so a small
folder weighted high is read several times an epoch). Without weights, the epoch is every batch
of every folder once, in an order shuffled by the seed.
"""

from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

import torch


class MixedLoader:
    """Batches of several ShardLoaders (one per folder), mixed by weight, resumable mid-epoch."""

    def __init__(self, loaders: Sequence[Any], weights: Sequence[float] | None, seed: int):
        self.loaders, self.weights, self.seed = list(loaders), weights, seed
        self.epoch = self.done = 0
        self._iters: list[Iterator | None] = [None] * len(self.loaders)
        # the folder of each batch handed out and not yet consumed (Lightning fetches ahead)
        self._pending: deque[int] = deque()

    def __len__(self) -> int:
        return sum(len(loader) for loader in self.loaders)

    def choices(self) -> list[int]:
        """The folder of every batch of this epoch."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        if self.weights is None:
            order = torch.cat([torch.full((len(loader),), i) for i, loader in enumerate(self.loaders)])
            return order[torch.randperm(len(order), generator=generator)].tolist()
        return torch.multinomial(torch.tensor(self.weights), len(self), True, generator=generator).tolist()

    def _next_from(self, source: int) -> Any:
        for _ in range(2):  # a folder that ran out starts its next pass
            if self._iters[source] is None:
                self._iters[source] = iter(self.loaders[source])
            try:
                return next(self._iters[source])
            except StopIteration:
                self._iters[source] = None
        raise RuntimeError(f"shard folder {source} yields no batch")

    def __iter__(self) -> Iterator[Any]:
        # each folder's pass goes on across epochs of the mix (a folder's pass and the mix's epoch
        # end apart when weights are given); a resumed loader starts its folders where they stood
        self._pending.clear()
        for source in self.choices()[self.done :]:
            self._pending.append(source)
            yield self._next_from(source)

    def consumed(self) -> None:
        """A batch reached the model (the data module's on_before_batch_transfer says so)."""
        if self._pending:
            self.loaders[self._pending.popleft()].consumed()
        self.done += 1
        if self.done >= len(self):
            self.epoch, self.done = self.epoch + 1, 0

    def position(self) -> tuple[int, int]:
        """(epoch, batches consumed in it), as ShardLoader.position."""
        return self.epoch, self.done

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "done": self.done, "folders": [loader.state_dict() for loader in self.loaders]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.done = int(state["epoch"]), int(state["done"])
        for loader, folder in zip(self.loaders, state["folders"], strict=True):
            loader.load_state_dict(folder)
