"""The domain classifier whose features score generated images (FID_clf, IS_clf).

genkit trains it once per data set on the labelled training split and caches it, keyed by the
checksum of the training files and the architecture version, so every model and every run is
scored with the same network.
"""

import json
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from filelock import FileLock, Timeout
from torch import nn

from genkit.atomic import atomic_path
from genkit.console import tracked
from genkit.data.download import default_data_root, sha256_of
from genkit.data.images import ImageDataModule

log = logging.getLogger("genkit")

# bump when the architecture or the training recipe changes (version 1: a VGG-style CNN trained
# for 4 epochs, about 4 minutes on 2 CPU cores; its fid_clf values differ from version 2's)
CLASSIFIER_VERSION = 2


class DomainClassifier(nn.Module):
    """A small CNN: three conv-BN-ReLU stages, each halving the image by max-pooling (28 -> 14 ->
    7 -> 3 pixels), then `features`, its 128-d penultimate layer. Small enough to train in under a
    minute on two CPU cores: most of its cost is the first, full-size stage, so that one is narrow."""

    num_features = 128
    widths = (16, 32, 64)

    def __init__(self, channels: int = 1, num_classes: int = 10, image_size: int = 28):
        super().__init__()
        layers, c_in = [], channels
        for width in self.widths:
            layers += [
                nn.Conv2d(c_in, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            c_in = width
        s = image_size // 2 ** len(self.widths)
        self.body = nn.Sequential(*layers, nn.Flatten())  # (B, c_in * s * s)
        self.features = nn.Sequential(self.body, nn.Linear(c_in * s * s, self.num_features), nn.ReLU(inplace=True))
        self.head = nn.Linear(self.num_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class Features(nn.Module):
    """The classifier's penultimate features, as torchmetrics' FID wants a feature extractor."""

    def __init__(self, classifier: DomainClassifier):
        super().__init__()
        self.classifier = classifier
        self.num_features = classifier.num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(x)


class Logits(nn.Module):
    def __init__(self, classifier: DomainClassifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x)


def cache_path(datamodule: ImageDataModule, epochs: int, cache_dir: Path | None = None) -> Path:
    files = datamodule.source_files()
    key = "-".join(sha256_of(files[name])[:8] for name in sorted(files))
    root = cache_dir or default_data_root().parent / "classifiers"
    return root / f"{datamodule.name}-v{CLASSIFIER_VERSION}-e{epochs}-{key}.pt"


@torch.inference_mode()
def accuracy(model: nn.Module, loader, device) -> float:
    model.eval()
    correct = total = 0
    for x, y in loader:
        correct += (model(x.to(device)).argmax(1) == y.to(device)).sum().item()
        total += len(y)
    return correct / total


def train_classifier(
    datamodule: ImageDataModule, epochs: int | None, device, batch_size: int = 64, lr: float = 3e-3
) -> tuple[DomainClassifier, float]:
    """A one-cycle Adam schedule over the training split held in memory as one float tensor (no
    loader, no per-batch conversion), channels-last (about a quarter faster on CPUs). No flips or
    dropout: in a few epochs they cost more accuracy than they buy. `epochs`: the data set's
    classifier_epochs unless given; scripts/classifier_speed.py measures time and accuracy."""
    epochs = epochs or datamodule.classifier_epochs
    torch.manual_seed(0)
    model = DomainClassifier(datamodule.channels, datamodule.num_classes, datamodule.image_size)
    model = model.to(device, memory_format=torch.channels_last)
    images = datamodule.train_set.images.to(device).float().div_(127.5).sub_(1.0)  # (N, C, H, W) in [-1, 1]
    images = images.contiguous(memory_format=torch.channels_last)
    labels = datamodule.train_set.labels.to(device)
    steps = len(labels) // batch_size  # per epoch; the last partial batch is left out
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps, pct_start=0.25)
    order = torch.Generator().manual_seed(0)
    batches = (
        (epoch, idx.to(device))
        for epoch in range(epochs)
        for idx in torch.randperm(len(labels), generator=order)[: steps * batch_size].split(batch_size)
    )
    model.train()
    for epoch, idx in tracked(batches, epochs * steps, f"{datamodule.name} classifier: batch"):
        loss = F.cross_entropy(model(images[idx]), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if sched.last_epoch % steps == 0:
            val = accuracy(model, datamodule.val_dataloader(), device)
            log.info("classifier epoch %d/%d: val accuracy %.4f", epoch + 1, epochs, val)
            model.train()
    return model, accuracy(model, datamodule.test_dataloader(), device)


def domain_classifier(
    datamodule: ImageDataModule, device="cpu", epochs: int | None = None, cache_dir: Path | None = None
) -> tuple[DomainClassifier, dict]:
    """The cached classifier of this data set, trained first if there is none. Returns it and
    its record: test accuracy, path, and whether it was trained just now."""
    epochs = epochs or datamodule.classifier_epochs
    path = cache_path(datamodule, epochs, cache_dir)
    datamodule.setup()
    path.parent.mkdir(parents=True, exist_ok=True)
    # one process trains it; another eval started meanwhile waits for it instead of training it too
    lock = FileLock(f"{path}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("Waiting for another genkit eval, which trains the %s classifier (%s.lock)", datamodule.name, path)
        lock.acquire()
    try:
        return _cached_or_trained(datamodule, epochs, device, path)
    finally:
        lock.release()


def _cached_or_trained(datamodule: ImageDataModule, epochs: int, device, path: Path) -> tuple[DomainClassifier, dict]:
    if path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model = DomainClassifier(datamodule.channels, datamodule.num_classes, datamodule.image_size)
        model.load_state_dict(saved["state_dict"])
        return model.to(device).eval(), {**saved["record"], "path": str(path), "trained_now": False}
    log.info("Training the %s domain classifier (once; cached in %s)", datamodule.name, path)
    model, test_accuracy = train_classifier(datamodule, epochs, device)
    record = {"test_accuracy": test_accuracy, "epochs": epochs, "version": CLASSIFIER_VERSION}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": model.cpu().state_dict(), "record": record}, tmp)
    log.info("%s classifier test accuracy: %s", datamodule.name, json.dumps(record))
    return model.to(device).eval(), {**record, "path": str(path), "trained_now": True}
