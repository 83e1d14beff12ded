"""Reader for the python release of CIFAR-10 (Krizhevsky 2009): `cifar-10-python.tar.gz`.

The archive holds `cifar-10-batches-py/data_batch_1` .. `data_batch_5` (train) and `test_batch`,
each a pickled dict: b"data", a uint8 array (N, 3072) with one image per row as three 32x32
planes R, G, B (row-major), and b"labels", N ints. Batches are read straight from the tar, so
nothing is unpacked onto disk and a failed read leaves nothing behind.

A pickle can run code when it loads, and files on disk are trusted without a checksum (a user
may hold a re-exported copy), so the batches load with an unpickler that builds numpy arrays and
nothing else. The official batches (written by Python 2's cPickle) need only the numpy globals
below, no builtin (Keras reads them with the same list), so nothing else is allowed.
"""

import io
import pickle
import tarfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from genkit.errors import GenkitError

# what rebuilding a numpy array needs; `numpy.core` in files written by numpy < 2, `numpy._core` after
ALLOWED_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }
)
PIXELS = 3 * 32 * 32  # one row of b"data": the R, G and B planes of a 32x32 image


class _ArraysOnly(pickle.Unpickler):
    def __init__(self, data: bytes, source: str):
        # bytes: Python 2's str keys (b"data") stay bytes instead of being guessed as text
        super().__init__(io.BytesIO(data), encoding="bytes")
        self.source = source

    def find_class(self, module: str, name: str):
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise GenkitError(
            f"{self.source} asks to load `{module}.{name}`, which a CIFAR-10 batch never holds: genkit loads only "
            f"numpy arrays from data files, and refused this file before anything ran. Delete the file so that "
            f"genkit downloads the official archive again, or replace it with the official one."
        )


def _read_batch(data: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    batch = _ArraysOnly(data, source).load()
    if isinstance(batch, dict):
        images = batch.get(b"data", batch.get("data"))
        labels = batch.get(b"labels", batch.get("labels"))
    else:
        images = labels = None
    if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 2):
        raise ValueError("it holds no uint8 array `data`")
    if images.shape[1] != PIXELS:
        raise ValueError(f"its images have {images.shape[1]} values, not the {PIXELS} of a 32x32 RGB image")
    labels = np.asarray(labels if labels is not None else [], dtype=np.int64)
    if labels.shape != (len(images),):
        raise ValueError(f"it holds {len(images)} images but labels of shape {labels.shape}")
    return images.reshape(-1, 3, 32, 32), labels  # (N, 3072) -> (N, C=3, H=32, W=32)


def read_cifar_split(paths: Mapping[str, Path], prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 3, 32, 32) and labels (N,) of one split: the batches named `<prefix>*` (in name
    order: data_batch_1 .. data_batch_5) in the tar archives among `paths` (file name -> path)."""
    batches = []  # (member name, images, labels)
    for path in paths.values():
        source = path
        try:
            with tarfile.open(path, "r:*") as archive:  # .tar.gz, or the .tar it may sit on disk as
                # each batch read as the scan passes it: one pass through the gzip stream, not one per batch
                for member in archive:
                    if member.isfile() and PurePosixPath(member.name).name.startswith(prefix):
                        source = f"{path}:{member.name}"
                        batches.append((member.name, *_read_batch(archive.extractfile(member).read(), source)))
        except GenkitError:
            raise
        except Exception as err:  # a damaged file fails in many ways: tar, gzip, pickle, numpy
            raise GenkitError(
                f"{source} cannot be read as CIFAR-10 ({type(err).__name__}: {err}). Delete the damaged file "
                f"so that genkit downloads it again, or replace it with the official one."
            ) from None
    if not batches:
        raise GenkitError(
            f"No batch named {prefix}* in {', '.join(str(p) for p in paths.values())}; set data.splits to the "
            f"batches' name prefixes (data_batch for train, test_batch for test)."
        )
    batches.sort(key=lambda batch: batch[0])
    images, labels = (np.concatenate([batch[i] for batch in batches]) for i in (1, 2))
    return torch.from_numpy(images), torch.from_numpy(labels)
