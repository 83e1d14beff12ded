"""One LightningDataModule for MNIST-format image sets (MNIST, Fashion-MNIST, ...).

Images come as float tensors (B, C, H, W) in [-1, 1] with integer labels. The whole set is a
uint8 tensor in memory (47 MB for MNIST), and batches are gathered with one indexing call per
batch (`__getitems__`) instead of one Python call per image.
"""

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from genkit.data.batching import data_device, device_batch_size, eval_indices, keep_batch, train_batches
from genkit.data.download import ensure_files, resolve_root
from genkit.data.idx import read_idx
from genkit.errors import GenkitError

log = logging.getLogger(__name__)


class ImageTensors(Dataset):
    """uint8 images (N, C, H, W) and labels (N,), served as batches scaled to [-1, 1]."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.images[i].float() / 127.5 - 1.0, self.labels[i]

    def __getitems__(self, indices: Sequence[int]):
        idx = torch.as_tensor(indices, device=self.images.device)
        return self.images[idx].float() / 127.5 - 1.0, self.labels[idx]


class ImageDataModule(L.LightningDataModule):
    """Train / val carved from the official training file with a fixed seed; test = the test file.

    batch_size is the global batch: under DDP each of N processes loads batch_size / N.
    """

    def __init__(
        self,
        name: str,
        files: Mapping[str, str],
        mirrors: Sequence[str],
        root: str | None = None,
        folder: str | None = None,
        val_size: int = 5000,
        split_seed: int = 12345,
        batch_size: int = 128,
        eval_batch_size: int = 500,
        num_workers: int = 0,
        max_device_batch: int | None = None,
        on_device: str | bool = "auto",
        channels: int = 1,
        image_size: int = 28,
        num_classes: int = 10,
    ):
        super().__init__()
        self.name = name
        self.files, self.mirrors = dict(files), list(mirrors)
        self.folder = resolve_root(root) / (folder or name)
        self.val_size, self.split_seed = val_size, split_seed
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers, self.max_device_batch, self.on_device = num_workers, max_device_batch, on_device
        self.channels, self.image_size, self.num_classes = channels, image_size, num_classes
        self.train_set = self.val_set = self.test_set = None

    def prepare_data(self) -> None:
        self.source_files()

    def source_files(self) -> dict[str, Path]:
        """The data set's files on disk (downloading the missing ones)."""
        return ensure_files(self.folder, self.files, self.mirrors, dataset=self.name)

    def _load(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        paths = self.source_files()
        images_name = next(n for n in paths if n.startswith(split) and "images" in n)
        labels_name = next(n for n in paths if n.startswith(split) and "labels" in n)
        images, labels = read_idx(paths[images_name]), read_idx(paths[labels_name]).long()
        if images.dim() == 3:  # (N, H, W) grey images
            images = images.unsqueeze(1)
        expected = (self.channels, self.image_size, self.image_size)
        if tuple(images.shape[1:]) != expected or len(images) != len(labels):
            raise GenkitError(
                f"{paths[images_name]} holds images of shape {tuple(images.shape[1:])} "
                f"({len(images)} images, {len(labels)} labels); data={self.name} expects {expected} "
                f"with one label each. Set data.channels / data.image_size to match the files."
            )
        return images.contiguous(), labels

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            images, labels = self._load("train")
            if not 0 <= self.val_size < len(images):
                raise GenkitError(f"data.val_size={self.val_size} must be below the {len(images)} images")
            order = torch.randperm(len(images), generator=torch.Generator().manual_seed(self.split_seed))
            val, train = order[: self.val_size], order[self.val_size :]
            device = data_device(self.trainer, self.on_device, images.numel())
            if device is not None:  # one uint8 copy on the GPU; batches are gathered and scaled there
                images, labels = images.to(device), labels.to(device)
                train, val = train.to(device), val.to(device)
            self.train_set = ImageTensors(images[train], labels[train])
            self.val_set = ImageTensors(images[val], labels[val])
        if stage in ("test", "predict", None) and self.test_set is None:
            self.test_set = ImageTensors(*self._load("t10k"))

    def sample_images(self, n: int) -> torch.Tensor:
        """The first n validation images (fixed, so grids of reconstructions compare across runs)."""
        if self.val_set is None:
            self.setup("fit")
        return self.val_set.__getitems__(range(min(n, len(self.val_set))))[0]

    def _workers(self) -> int:
        # worker processes cannot index tensors that live on the GPU
        return 0 if self.train_set is not None and self.train_set.images.is_cuda else self.num_workers

    def train_dataloader(self) -> DataLoader:
        batch = device_batch_size(self.trainer, self.batch_size, self.max_device_batch)
        return DataLoader(
            self.train_set,
            batch_sampler=train_batches(self.trainer, len(self.train_set), batch, self.split_seed),
            num_workers=self._workers(),
            collate_fn=keep_batch,
            persistent_workers=self._workers() > 0,
        )

    def _eval_loader(self, dataset: Dataset) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=device_batch_size(self.trainer, self.eval_batch_size),
            sampler=eval_indices(self.trainer, len(dataset)),
            num_workers=self._workers(),
            collate_fn=keep_batch,
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.test_set)
