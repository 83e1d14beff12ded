"""Batching shared by genkit's data modules.

- Datasets gather a whole batch in one indexing call (`__getitems__`), so the DataLoader passes
  that batch through unchanged (`keep_batch`) instead of collating single samples.
- `data.batch_size` is the global batch: each of N processes loads batch_size / N, split
  further into the gradient-accumulation steps that the trainer builder chose.
- Training batches follow one fixed permutation per (seed, epoch) and can start mid-epoch, so a
  run resumed from a checkpoint sees exactly the batches it had not seen yet.
- Records of unequal lengths (data=pairs) can be grouped by length, so a padded batch wastes
  little: `ShuffledBatches(lengths=...)`.
"""

from collections.abc import Iterator

import lightning as L
import torch
from torch.utils.data import DataLoader, Sampler

from genkit.errors import GenkitError


def keep_batch(batch):
    """collate_fn for datasets whose __getitems__ already returns a collated batch."""
    return batch


def per_process(trainer: L.Trainer | None, global_batch: int, *, accumulated: bool = True) -> int:
    """This process's share of a global batch, split further (training batches) into the trainer's
    gradient-accumulation steps, which genkit.training.build.build_trainer sets from data.max_device_batch."""
    if trainer is None:
        return global_batch
    world, steps = trainer.world_size, trainer.accumulate_grad_batches if accumulated else 1
    if global_batch % (world * steps):
        raise GenkitError(
            f"The global batch size {global_batch} does not split evenly over {world} processes x {steps} "
            f"accumulation steps; choose data.batch_size as a multiple of {world * steps}."
        )
    return global_batch // (world * steps)


class ShuffledBatches(Sampler[list[int]]):
    """Batches of this process's share of a permutation fixed by (seed, epoch), resumable.

    It counts the batches training consumed (`consumed()`, called by the data module as each
    training batch reaches the model) and saves that count through Lightning's state_dict
    protocol, so a run resumed mid-epoch starts with the first batch it had not trained on.
    (Counting what the sampler yielded would be wrong: the loop fetches batches ahead.)
    Every process gets the same number of batches (the permutation is cut to a multiple of the
    world size), as DDP requires.

    lengths (one per item): group items of similar length into a batch, for data padded to each
    batch's longest item. This process's share of the permutation is cut into windows of
    GROUP_WINDOW batches, each window sorted by length and cut into batches, and the batches
    shuffled: batches stay random draws from a window of the data, with little padding.
    (Hugging Face's LengthGroupedSampler does the same, but cannot start mid-epoch.)
    """

    #: batches a window of length grouping spans: a larger window pads less, mixes lengths less
    GROUP_WINDOW = 50

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        seed: int,
        rank: int = 0,
        world: int = 1,
        shuffle: bool = True,
        lengths: torch.Tensor | None = None,
    ):
        self.n, self.batch_size, self.seed, self.shuffle = n, batch_size, seed, shuffle
        self.rank, self.world, self.lengths = rank, world, lengths
        self.epoch = self.done = 0
        # Lightning calls set_epoch on `dataloader.sampler` and `batch_sampler.sampler`, not on a
        # batch sampler itself: point `sampler` here so each epoch gets its own permutation
        self.sampler = self

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self.done = epoch, 0

    def consumed(self) -> None:
        self.done += 1
        if self.done >= len(self):
            # the epoch is over: a checkpoint written now resumes at the start of the next one, also
            # when DataLoader workers start iterating before Lightning calls set_epoch
            self.epoch, self.done = self.epoch + 1, 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "done": self.done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.done = int(state["epoch"]), int(state["done"])

    def __len__(self) -> int:
        return (self.n // self.world) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        # unshuffled: the items in order (text streams: process r reads streams r, r + world, ...)
        order = torch.randperm(self.n, generator=generator) if self.shuffle else torch.arange(self.n)
        share = order[: self.n - self.n % self.world][self.rank :: self.world]
        batches = share[: len(self) * self.batch_size].view(len(self), self.batch_size)
        if self.lengths is not None and self.shuffle:
            batches = self._grouped(batches.flatten(), generator)
        for b in range(self.done, len(self)):
            yield batches[b].tolist()

    def _grouped(self, share: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The share's items sorted by length within windows of GROUP_WINDOW batches, cut into
        batches, the batches shuffled (the same for a given seed and epoch, so resumable)."""
        window = self.GROUP_WINDOW * self.batch_size
        parts = [part[torch.argsort(self.lengths[part], descending=True, stable=True)] for part in share.split(window)]
        batches = torch.cat(parts).view(-1, self.batch_size)
        return batches[torch.randperm(len(batches), generator=generator)]


class ResumableLoader(DataLoader):
    """A DataLoader whose position is its batch sampler's: Lightning saves this state_dict in
    checkpoints and restores it before iterating again (its protocol for resumable loaders)."""

    def state_dict(self) -> dict[str, int]:
        return self.batch_sampler.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.batch_sampler.load_state_dict(state)


def data_device(trainer: L.Trainer | None, on_device: str | bool, nbytes: int) -> torch.device | None:
    """The accelerator to keep a data set on, or None to keep it in host memory.

    `auto`: on a CUDA device when the set takes under a tenth of its free memory. Batches are then
    gathered and scaled on the device: no worker processes, no host-to-device copy per step.
    On CPUs there is nothing to move.
    """
    if trainer is None or on_device is False or on_device == "false":
        return None
    device = trainer.strategy.root_device
    if device.type != "cuda":
        return None
    if on_device == "auto":
        free, _ = torch.cuda.mem_get_info(device)
        if nbytes > free / 10:
            return None
    return device


def eval_indices(trainer: L.Trainer | None, n: int) -> list[int]:
    """This process's share of an evaluation set: every item on exactly one process, no padding."""
    if trainer is None or trainer.world_size == 1:
        return list(range(n))
    return list(range(trainer.global_rank, n, trainer.world_size))


def train_batches(
    trainer: L.Trainer | None,
    n: int,
    batch_size: int,
    seed: int,
    shuffle: bool = True,
    lengths: torch.Tensor | None = None,
) -> ShuffledBatches:
    """The training batch sampler of this process."""
    rank, world = (0, 1) if trainer is None else (trainer.global_rank, trainer.world_size)
    return ShuffledBatches(n, batch_size, seed=seed, rank=rank, world=world, shuffle=shuffle, lengths=lengths)
