"""The domain classifier whose features score generated images (FID_clf, IS_clf).

genkit trains it once per data set on the labelled training split and caches it, keyed by the
checksum of the training files and the architecture version, so every model and every run is
scored with the same network.
"""

import json
import logging
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from filelock import FileLock, Timeout
from torch import nn
from torch.utils.data import DataLoader

from genkit.callbacks.progress import tracked
from genkit.data.batching import keep_batch
from genkit.data.download import default_data_root, sha256_of
from genkit.data.images import ImageDataModule

log = logging.getLogger("genkit")

# bump when the architecture or the training recipe changes
CLASSIFIER_VERSION = 1


class DomainClassifier(nn.Module):
    """A small VGG-style CNN for 28x28 images; `features` is its 128-d penultimate layer."""

    num_features = 128

    def __init__(self, channels: int = 1, num_classes: int = 10, image_size: int = 28):
        super().__init__()

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [
                nn.Conv2d(c_in, c_out, 3, padding=1),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.Conv2d(c_out, c_out, 3, padding=1),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]

        s = image_size // 4
        self.body = nn.Sequential(*block(channels, 32), *block(32, 64), nn.Flatten())  # (B, 64 * s * s)
        self.features = nn.Sequential(self.body, nn.Linear(64 * s * s, self.num_features), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(self.num_features, num_classes))

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


@torch.no_grad()
def accuracy(model: nn.Module, loader, device) -> float:
    model.eval()
    correct = total = 0
    for x, y in loader:
        correct += (model(x.to(device)).argmax(1) == y.to(device)).sum().item()
        total += len(y)
    return correct / total


def train_classifier(datamodule: ImageDataModule, epochs: int, device) -> tuple[DomainClassifier, float]:
    torch.manual_seed(0)
    model = DomainClassifier(datamodule.channels, datamodule.num_classes, datamodule.image_size).to(device)
    loader = DataLoader(datamodule.train_set, batch_size=128, shuffle=True, collate_fn=keep_batch)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=epochs * len(loader))
    batches = ((epoch, x, y) for epoch in range(epochs) for x, y in loader)
    for epoch, x, y in tracked(batches, epochs * len(loader), f"{datamodule.name} classifier: batch"):
        model.train()
        loss = F.cross_entropy(model(x.to(device)), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if sched.last_epoch % len(loader):
            continue
        log.info(
            "classifier epoch %d/%d: val accuracy %.4f",
            epoch + 1,
            epochs,
            accuracy(model, datamodule.val_dataloader(), device),
        )
    return model, accuracy(model, datamodule.test_dataloader(), device)


def domain_classifier(
    datamodule: ImageDataModule, device="cpu", epochs: int = 4, cache_dir: Path | None = None
) -> tuple[DomainClassifier, dict]:
    """The cached classifier of this data set, trained first if there is none. Returns it and
    its record: test accuracy, path, and whether it was trained just now."""
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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save({"state_dict": model.cpu().state_dict(), "record": record}, tmp)
    os.replace(tmp, path)
    log.info("%s classifier test accuracy: %s", datamodule.name, json.dumps(record))
    return model.to(device).eval(), {**record, "path": str(path), "trained_now": True}
