"""Pictures as shards: written from an image data set by `genkit prepare`, trained on with
`data=image_shards data.path=<folder or s3://...>` (genkit.data.shards).

Every split is LitData chunks of items {"image": uint8 (C, H, W), "label": int}, written a block of
pictures at a time. Training streams the train split: each process reads its own part, shuffled
by the run's seed, and resumes mid-epoch (shards.ShardLoader); its batches cross to the
accelerator as uint8 and are scaled to [-1, 1] (and augmented) there. Validation and test read
their splits by index instead, so that every picture is scored exactly once, on one process, in a
fixed order (a stream under DDP drops items to give each process as many); they are a small part
of a data set. Several folders (data.path=[a,b]) train mixed by data.mix; their validation and
test splits are read one after the other.
"""

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from genkit.data.base import GenkitDataModule
from genkit.data.image_folder import augment, augmentations
from genkit.data.images import ImageDataModule
from genkit.data.shard_sources import ShardSources
from genkit.data.shards import (
    META,
    SplitWriter,
    fetch,
    shard_loader,
    streaming_dataset,
)
from genkit.errors import GenkitError

SPLITS = ("train", "val", "test")
# the uint8 bytes of the pictures written at once: memory holds a block (and its float copy while
# it is read through the data set's contract), whatever the size of the set
BLOCK_BYTES = 16 * 2**20


# ---- writing -------------------------------------------------------------------------------------


def as_uint8(images: torch.Tensor) -> torch.Tensor:
    """Pictures in [-1, 1] back to the uint8 values they were scaled from: exact for every value,
    since u / 127.5 - 1 in float32 lies within 4e-6 of its true value."""
    return images.add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)


def picture_blocks(dataset: Dataset, rows: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """A split of an image data set as blocks of `rows` pictures, uint8 (B, C, H, W) with labels
    (B,). Read through the contract every image set keeps (`__getitems__`: a batch in [-1, 1]), so
    that in-memory sets (ImageTensors) and sets read from disk (PictureRows) are read alike."""
    for start in range(0, len(dataset), rows):
        images, labels = dataset.__getitems__(list(range(start, min(start + rows, len(dataset)))))
        yield as_uint8(images).cpu(), labels.cpu()


def write_shards(datamodule: ImageDataModule, out: Path) -> dict:
    """The image data set `datamodule` (set up for fit and test) as picture shards in `out`, a
    block of pictures at a time; what genkit-shards.json says about them."""
    rows = max(1, BLOCK_BYTES // (datamodule.channels * datamodule.image_size**2))
    sets = {"train": datamodule.train_set, "val": datamodule.val_set, "test": datamodule.test_set}
    counts = {}
    for split in SPLITS:
        dataset = sets[split]
        counts[split] = 0
        if dataset is None or len(dataset) == 0:
            continue
        writer = SplitWriter(out / split)
        for images, labels in picture_blocks(dataset, rows):
            for image, label in zip(images.numpy(), labels.tolist(), strict=True):
                writer.add({"image": image, "label": int(label)})
        counts[split] = writer.close()
    return {
        "image_size": int(datamodule.image_size),
        "channels": int(datamodule.channels),
        "num_classes": int(datamodule.num_classes),
        "class_names": [str(name) for name in datamodule.class_names],
        "classifier_epochs": int(datamodule.classifier_epochs),
        "splits": counts,
        "pictures": counts["train"],
    }


# ---- reading -------------------------------------------------------------------------------------


class ShardPictures(Dataset):
    """A split of one or more shard folders (one after the other), read by index: batches of
    pictures in [-1, 1] with their labels, as every image set gives them (`__getitems__`), so that
    sample grids, genkit eval and the evaluation loaders read it as they read any image set."""

    def __init__(self, datasets: Sequence, sizes: Sequence[int], shape: tuple[int, int, int]):
        self.datasets, self.shape = list(datasets), shape
        self.ends = np.cumsum([0, *sizes])  # where each source's items start and end
        self._labels: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.ends[-1])

    def pictures(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (B, C, H, W) and labels (B,) of these items, in their order."""
        items = []
        for i in np.asarray(indices, dtype=np.int64).reshape(-1):
            source = int(np.searchsorted(self.ends, i, side="right")) - 1
            items.append(self.datasets[source][int(i - self.ends[source])])
        if not items:
            return torch.empty((0, *self.shape), dtype=torch.uint8), torch.empty(0, dtype=torch.long)
        images = torch.from_numpy(np.stack([item["image"] for item in items]))
        return images, torch.tensor([int(item["label"]) for item in items], dtype=torch.long)

    def __getitem__(self, i: int):
        images, labels = self.__getitems__([i])
        return images[0], labels[0]

    def __getitems__(self, indices):
        images, labels = self.pictures(indices)
        return images.float().div_(127.5).sub_(1.0), labels

    @property
    def images(self) -> torch.Tensor:
        """The whole split as one uint8 tensor in memory, for what takes a split whole (genkit
        eval's domain classifier); training never asks."""
        images, self._labels = self.pictures(range(len(self)))
        return images

    @property
    def labels(self) -> torch.Tensor:
        if self._labels is None:
            self._labels = self.pictures(range(len(self)))[1]
        return self._labels


class ImageShardsDataModule(ShardSources, ImageDataModule):
    """Picture shards (one folder, or several mixed by data.mix) for image models: class labels,
    sample grids and evaluation as for any image set (genkit.data.images.ImageDataModule),
    training batches streamed from the shards, each process its own part.

    image_size, channels, num_classes and class_names come with the config (read from the first
    folder's genkit-shards.json when it is composed). Nothing is read from the shards until
    prepare_data / setup, so a checkpoint samples without them."""

    file_keys = ("path",)
    kind = "pictures"

    def __init__(
        self,
        path: Any,
        image_size: int,
        channels: int,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        mix: Any = None,
        name: str = "image_shards",
        batch_size: int = 64,
        eval_batch_size: int = 64,
        num_workers: int = 0,
        max_device_batch: int | None = None,
        seed: int = 12345,
        cache_dir: str | None = None,
        augment: Sequence[str] | None = (),
        root: str | None = None,
    ):
        # not ImageDataModule.__init__: that one names a built-in set's files and their format. `root`
        # (the data root, which genkit sets when it rebuilds a checkpoint) is not read: data.path names
        # the shards
        GenkitDataModule.__init__(self)
        self.init_sources(path, mix, cache_dir)
        self.name, self.augment = name, augmentations(augment)
        self.image_size, self.channels, self.num_classes = image_size, channels, num_classes
        self.class_names = (
            [str(c) for c in class_names] if class_names is not None else [str(i) for i in range(num_classes)]
        )
        if len(self.class_names) != num_classes:
            raise GenkitError(
                f"data.class_names has {len(self.class_names)} names but data.num_classes is {num_classes}; "
                f"give one name per class (or leave both to the shards, their default)."
            )
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed
        self.num_workers, self.max_device_batch = num_workers, max_device_batch
        self.train_set = self.val_set = self.test_set = None

    # ---- the shards ------------------------------------------------------------------------------

    def check_sources(self, metas: list[dict]) -> None:
        """Every folder holds pictures of the size, channels and classes the config (and so the
        model) was built for."""
        config = {"image_size": self.image_size, "channels": self.channels, "num_classes": self.num_classes}
        # class names are not compared: folders of unlabelled pictures are each one class named after
        # their folder, and mixing them is what data.mix is for
        for p, meta in zip(self.paths, metas, strict=True):
            differ = {key: meta.get(key) for key, value in config.items() if meta.get(key) != value}
            if differ:
                theirs = ", ".join(f"{key}={value}" for key, value in differ.items())
                ours = ", ".join(f"data.{key}={config[key]}" for key in differ)
                raise GenkitError(
                    f"The shards in {p} hold pictures with {theirs}, but this run is configured for {ours} (from "
                    f"{self.paths[0]}, or set by hand). Mix only shards prepared at one picture size, channel count "
                    f"and class count (prepare the others again with data.image_size / data.channels to match), "
                    f"and leave these keys to the shards."
                )

    @property
    def classifier_epochs(self) -> int:
        """Passes of genkit eval's domain classifier: those of the data set the shards came from."""
        return int(self.metas()[0].get("classifier_epochs", 4))

    def source_files(self) -> dict[str, Path]:
        """The shards' descriptions stand for them (genkit eval keys its domain classifier by them)."""
        return {f"{i}-{META}": fetch(p, META, self.shards_cache) for i, p in enumerate(self.paths)}

    def _split(self, split: str) -> ShardPictures:
        """A split of every source that has one, read by index in the order it was written."""
        datasets, sizes = [], []
        for p, meta in zip(self.paths, self.metas(), strict=True):
            count = int(meta["splits"].get(split) or 0)
            if not count:
                continue
            dataset = streaming_dataset(p, split, cache_dir=self.shards_cache, shuffle=False, seed=self.seed)
            found = sum(end - start for start, end in dataset.region_of_interest)
            if found != count:
                raise GenkitError(
                    f"The {split} split of the shards in {p} holds {found} pictures, not the {count} its {META} "
                    f"gives it: the folder was not copied whole, or was damaged; copy it again, or write it again "
                    f"with `genkit prepare`."
                )
            datasets.append(dataset)
            sizes.append(count)
        return ShardPictures(datasets, sizes, (self.channels, self.image_size, self.image_size))

    def setup(self, stage: str | None = None) -> None:
        if self.val_set is None:
            self.val_set = self._split("val")
            # read by index only by genkit eval (its domain classifier): training streams the split
            self.train_set = self._split("train")
        if stage in ("test", "predict", None) and self.test_set is None:
            test = self._split("test")
            self.test_set = test if len(test) else self.val_set

    # ---- loaders --------------------------------------------------------------------------------

    def train_dataloader(self):
        return self.streamed_training_loader("training pictures")

    def val_dataloader(self) -> DataLoader:
        return self.evaluation_loader(self.val_set, self.eval_batch_size, self.num_workers)

    def test_dataloader(self) -> DataLoader:
        return self.evaluation_loader(self.test_set, self.eval_batch_size, self.num_workers)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """A training batch ({"image": uint8 (B, C, H, W), "label": (B,)}, LitData's collation) as
        pictures in [-1, 1] and labels, scaled where it landed, and data.augment applied. Its random
        draws follow the run's seed, the process and the place in the shards a checkpoint would
        save after this batch, so a resumed run augments the batches it had not seen as the first
        run would have. Evaluation batches come scaled already (ShardPictures)."""
        if self.trainer is None or not self.trainer.training or not isinstance(batch, dict):
            return batch
        x = batch["image"].float().div_(127.5).sub_(1.0)  # (B, C, H, W) in [-1, 1]
        if self.augment:
            x = augment(x, self.augment, torch.Generator().manual_seed(self._augment_seed()))
        return x, batch["label"].long()

    def _augment_seed(self) -> int:
        place = [self.seed, self.trainer.global_rank, *self._train_batches.position()]
        digest = hashlib.sha256(json.dumps(place, sort_keys=True).encode()).digest()
        return int.from_bytes(digest[:8], "little") % 2**63

    # ---- what genkit sample, eval and bench ask -------------------------------------------------

    def train_images(self, n: int, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
        """n training pictures in [-1, 1] (a fixed draw per seed): the first n of the shards
        shuffled by `seed`, which reads a few chunks rather than some of every chunk."""
        self.metas()
        datasets = [
            streaming_dataset(p, "train", cache_dir=self.shards_cache, shuffle=True, seed=seed) for p in self.paths
        ]
        left = n
        for batch in shard_loader(datasets, self.weights, batch_size, seed, 0):
            yield batch["image"][:left].float().div_(127.5).sub_(1.0)
            left -= len(batch["image"])
            if left <= 0:
                return
