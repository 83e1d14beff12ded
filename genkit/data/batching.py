"""Batching shared by genkit's data modules.

- Datasets gather a whole batch in one indexing call (`__getitems__`), so the DataLoader passes
  that batch through unchanged (`keep_batch`) instead of collating single samples.
- `data.batch_size` is the global batch: each of N processes loads batch_size / N, split
  further into gradient-accumulation steps when `data.max_device_batch` is smaller.
- Training batches follow one fixed permutation per (seed, epoch) and can start mid-epoch, so a
  run resumed from a checkpoint sees exactly the batches it had not seen yet.
"""

import math
from collections.abc import Iterator

import lightning as L
import torch
from torch.utils.data import Sampler

from genkit.errors import GenkitError


def keep_batch(batch):
    """collate_fn for datasets whose __getitems__ already returns a collated batch."""
    return batch


def device_batch_size(trainer: L.Trainer | None, global_batch: int, max_device_batch: int | None = None) -> int:
    """The per-process batch for a global batch; sets gradient accumulation when it must be split."""
    world = trainer.world_size if trainer is not None else 1
    if global_batch % world:
        raise GenkitError(
            f"The global batch size {global_batch} does not split evenly over {world} processes; "
            f"choose data.batch_size as a multiple of {world}."
        )
    per_device = global_batch // world
    if trainer is None or not max_device_batch or per_device <= max_device_batch:
        return per_device
    steps = math.ceil(per_device / max_device_batch)
    if per_device % steps:
        raise GenkitError(
            f"A per-process batch of {per_device} does not split into {steps} equal accumulation steps of at most "
            f"data.max_device_batch={max_device_batch}; choose sizes that divide evenly."
        )
    if not trainer.lightning_module.automatic_optimization:
        raise GenkitError(
            f"{type(trainer.lightning_module).__name__} steps its optimizers itself and cannot accumulate "
            f"gradients: raise data.max_device_batch to {per_device} or lower data.batch_size."
        )
    trainer.accumulate_grad_batches = steps
    return per_device // steps


class ShuffledBatches(Sampler[list[int]]):
    """Batches of this process's share of a permutation fixed by (seed, epoch).

    `skip` batches of `start_epoch` are left out: a resumed run continues where it stopped.
    Every process gets the same number of batches (the permutation is cut to a multiple of
    the world size), as DDP requires.
    """

    def __init__(
        self, n: int, batch_size: int, *, seed: int, rank: int = 0, world: int = 1, start_epoch: int = 0, skip: int = 0
    ):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world = rank, world
        self.epoch = self.start_epoch = start_epoch
        self.skip = skip
        # Lightning calls set_epoch on `dataloader.sampler` and `batch_sampler.sampler`, not on a
        # batch sampler itself: point `sampler` here so each epoch gets its own permutation
        self.sampler = self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return (self.n // self.world) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        share = order[: self.n - self.n % self.world][self.rank :: self.world]
        first = self.skip if self.epoch == self.start_epoch else 0
        for b in range(first, len(self)):
            yield share[b * self.batch_size : (b + 1) * self.batch_size].tolist()


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


def train_batches(trainer: L.Trainer | None, n: int, batch_size: int, seed: int) -> ShuffledBatches:
    """The training batch sampler, picking up mid-epoch when the trainer was restored from a checkpoint."""
    if trainer is None:
        return ShuffledBatches(n, batch_size, seed=seed)
    # read before the fit loop resets its counters: batches fully processed in the current epoch
    done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
    return ShuffledBatches(
        n,
        batch_size,
        seed=seed,
        rank=trainer.global_rank,
        world=trainer.world_size,
        start_epoch=trainer.current_epoch,
        skip=done,
    )
