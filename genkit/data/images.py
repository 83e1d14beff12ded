"""One LightningDataModule for labelled image sets read by format (`idx`: MNIST, Fashion-MNIST).

Images come as float tensors (B, C, H, W) in [-1, 1] with integer labels; `class_names` name the
labels, so that a conditional model is asked for `label=7` or `label=sneaker`. The whole set is a
uint8 tensor in memory (47 MB for MNIST), and batches are gathered with one indexing call per
batch (`__getitems__`) instead of one Python call per image.
"""

import logging
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.utils import save_image

from genkit.checkpoints.trust import check_plain_name
from genkit.data.base import GenkitDataModule, with_suffix
from genkit.data.batching import data_device, per_process
from genkit.data.cifar import read_cifar_split
from genkit.data.download import ensure_files, resolve_root
from genkit.data.idx import read_idx_split
from genkit.errors import GenkitError
from genkit.options import Option, Rule

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


# format -> reader of one split: (files on disk, the split's file-name prefix) -> (images, labels)
READERS: dict[str, Callable[[Mapping[str, Path], str], tuple[torch.Tensor, torch.Tensor]]] = {
    "idx": read_idx_split,
    "cifar": read_cifar_split,
}


def save_grid(images: torch.Tensor, path: str | Path, labels: torch.Tensor | None = None) -> Path:
    """Images (N, C, H, W) in [-1, 1] as a grid PNG: one row per class when `labels` come in runs
    of equal length (labels=all), else square-ish."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nrow = math.ceil(math.sqrt(len(images)))
    if labels is not None and len(labels) == len(images):
        _, runs = torch.unique_consecutive(labels.cpu(), return_counts=True)
        if len(runs) > 1 and bool((runs == runs[0]).all()):
            nrow = int(runs[0])
    save_image(images.float().cpu(), path, nrow=nrow, normalize=True, value_range=(-1, 1), pad_value=1.0)
    return path


def _name_key(name: str) -> str:
    """A class name as people type it: `Ankle boot`, `ankle_boot`, `ankle-boot` -> `ankleboot`."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


class ImageDataModule(GenkitDataModule):
    """Train / val carved from the training split with a fixed seed (`split_seed`); test = the test
    split. `splits` names each split's files (for `idx`: their name prefix, e.g. `t10k` for test).

    batch_size is the global batch: under DDP each of N processes loads batch_size / N. Training
    batches are shuffled by `seed` (the run's seed), independently of the validation split.
    """

    modality = "images"
    # a built-in set's files live under the data root, named by genkit's own config
    file_keys = ()
    shards = ("pictures", "genkit.data.picture_shards:write_shards", "image_shards")
    input_options = {
        "images": {},
        "image_labels": {},
        "labels": {
            "label": Option(
                None,
                "n samples of one class: its number or its name, e.g. label=7 or label=sneaker",
                Rule(
                    lambda v: isinstance(v, int | str) and not isinstance(v, bool),
                    "one class: its number or its name, e.g. label=7 or label=sneaker",
                ),
                shown="label=7 / label=sneaker",
            ),
            "labels": Option(
                None,
                "all: one grid row per class (the default), or a list of classes, e.g. labels=[3,7]",
                Rule(
                    lambda v: v == "all" or (isinstance(v, Sequence) and not isinstance(v, str) and len(v) > 0),
                    "all or a list of classes, e.g. labels=all or labels=[3,7]",
                ),
                shown="labels=all",
            ),
        },
    }
    input_help = {
        "labels": "it was trained without class labels (model.conditional=false), so it does not generate "
        "by class; genkit's image families do when trained with model.conditional=true"
    }

    def __init__(
        self,
        name: str,
        files: Mapping[str, str],
        mirrors: Sequence[str],
        format: str = "idx",
        splits: Mapping[str, str] | None = None,
        root: str | None = None,
        folder: str | None = None,
        val_size: int = 5000,
        split_seed: int = 12345,
        seed: int = 12345,
        batch_size: int = 128,
        eval_batch_size: int = 500,
        num_workers: int = 0,
        max_device_batch: int | None = None,
        on_device: str | bool = "auto",
        channels: int = 1,
        image_size: int = 28,
        num_classes: int = 10,
        class_names: Sequence[str] | None = None,
        classifier_epochs: int = 4,
    ):
        super().__init__()
        if format not in READERS:
            raise GenkitError(f"data.format={format!r} is not an image format genkit reads: {', '.join(READERS)}.")
        self.name, self.format = name, format
        self.splits = dict(splits or {"train": "train", "test": "test"})
        self.files, self.mirrors = dict(files), list(mirrors)
        check_plain_name(name, "data.name")
        check_plain_name(folder or name, "data.folder")
        self.folder = resolve_root(root) / (folder or name)
        self.val_size, self.split_seed, self.seed = val_size, split_seed, seed
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers, self.max_device_batch, self.on_device = num_workers, max_device_batch, on_device
        self.channels, self.image_size, self.num_classes = channels, image_size, num_classes
        self.class_names = (
            [str(c) for c in class_names] if class_names is not None else [str(i) for i in range(num_classes)]
        )
        if len(self.class_names) != num_classes:
            raise GenkitError(
                f"data.class_names has {len(self.class_names)} names but data.num_classes is {num_classes}; "
                f"give one name per class."
            )
        # passes of genkit eval's domain classifier over the training split (genkit.metrics.classifier)
        self.classifier_epochs = classifier_epochs
        self.train_set = self.val_set = self.test_set = None

    def prepare_data(self) -> None:
        self.source_files()

    def source_files(self) -> dict[str, Path]:
        """The data set's files on disk (downloading the missing ones)."""
        return ensure_files(self.folder, self.files, self.mirrors, dataset=self.name)

    def _load(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = READERS[self.format](self.source_files(), self.splits[split])
        expected = (self.channels, self.image_size, self.image_size)
        if tuple(images.shape[1:]) != expected or len(images) != len(labels):
            raise GenkitError(
                f"The {split} split of {self.name} holds images of shape {tuple(images.shape[1:])} "
                f"({len(images)} images, {len(labels)} labels); data={self.name} expects {expected} "
                f"with one label each. Set data.channels / data.image_size to match the files."
            )
        return images.contiguous(), labels.long()

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
            self.test_set = ImageTensors(*self._load("test"))

    # ---- the data contract ----------------------------------------------------------------------

    def sample_input(self, name: str, n: int, options: Mapping) -> torch.Tensor:
        if name == "images":
            return self.sample_images(n)
        if name == "image_labels":
            return self.sample_images(n, labels=True)
        if name == "labels":
            return self.labels_to_generate(n, options.get("label"), options.get("labels"))
        return super().sample_input(name, n, options)

    def write_samples(self, samples: torch.Tensor, path: str | Path, inputs: Mapping[str, Any] | None = None) -> Path:
        return save_grid(samples, with_suffix(path, self.sample_suffix), (inputs or {}).get("labels"))

    # ---- classes --------------------------------------------------------------------------------

    def class_index(self, value: Any, option: str = "label") -> int:
        """A class given as its number (7) or its name (`sneaker`, `Ankle boot`, `t-shirt`)."""
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < self.num_classes:
            return value
        if isinstance(value, str):
            key = _name_key(value)
            for i, name in enumerate(self.class_names):
                # the whole name or one of its slash-separated parts ("T-shirt/top" -> tshirt, top)
                if key in (_name_key(name), *map(_name_key, name.split("/"))):
                    return i
            if key.isdigit() and int(key) < self.num_classes:
                return int(key)
        choices = ", ".join(f"{i} ({name})" if name != str(i) else name for i, name in enumerate(self.class_names))
        raise GenkitError(
            f"{option}={value!r} is not a class of {self.name}. Pass a class number from 0 to {self.num_classes - 1} "
            f"or a name: {choices}."
        )

    def labels_to_generate(self, n: int, label: Any = None, labels: Any = None) -> torch.Tensor:
        """Class labels for n samples: n of `label`; or for `labels` (`all` (the default), or a list
        of classes), ceil(n / classes) of each in turn, so that a grid has one row per class."""
        if label is not None and labels is not None:
            raise GenkitError(
                f"Pass label= (one class) or labels= (several), not both: got label={label!r}, labels={labels!r}."
            )
        if label is not None:
            return torch.full((n,), self.class_index(label), dtype=torch.long)
        if labels is None or labels == "all":
            classes = list(range(self.num_classes))
        elif isinstance(labels, Sequence) and not isinstance(labels, str) and len(labels) > 0:
            classes = [self.class_index(v, "labels") for v in labels]
        else:
            raise GenkitError(
                f"labels={labels!r} must be `all` or a list of classes, e.g. labels=[3,7] or labels=[sneaker,bag]."
            )
        per_class = math.ceil(n / len(classes))
        return torch.tensor(classes, dtype=torch.long).repeat_interleave(per_class)

    def reference_data(self) -> dict[str, torch.Tensor]:
        if self.train_set is None:
            self.setup("fit")
        return {"train": self.train_set.images}

    def test_images(self) -> Iterator[torch.Tensor]:
        for x, _ in self.test_dataloader():
            yield x

    def train_images(self, n: int, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
        """n random training images (a fixed draw per seed), in batches."""
        if self.train_set is None:
            self.setup("fit")
        order = torch.randperm(len(self.train_set), generator=torch.Generator().manual_seed(seed))[:n]
        for start in range(0, len(order), batch_size):
            yield self.train_set.__getitems__(order[start : start + batch_size])[0]

    def sample_images(self, n: int, labels: bool = False) -> torch.Tensor:
        """The first n validation images (fixed, so grids of reconstructions compare across runs),
        or their labels."""
        if self.val_set is None:
            self.setup("fit")
        return self.val_set.__getitems__(range(min(n, len(self.val_set))))[1 if labels else 0]

    def _workers(self) -> int:
        # worker processes cannot index tensors that live on the GPU
        return 0 if self.train_set is not None and self.train_set.images.is_cuda else self.num_workers

    def train_dataloader(self) -> DataLoader:
        batch = per_process(self.trainer, self.batch_size)
        return self.training_loader(self.train_set, batch, self.seed, self._workers())

    def val_dataloader(self) -> DataLoader:
        return self.evaluation_loader(self.val_set, self.eval_batch_size, self._workers())

    def test_dataloader(self) -> DataLoader:
        return self.evaluation_loader(self.test_set, self.eval_batch_size, self._workers())
