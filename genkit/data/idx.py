"""Reader for the IDX format of MNIST-style data sets (LeCun et al.), gzipped or raw.

Layout: a big-endian magic number (two zero bytes, a type code, the number of dimensions),
one big-endian int32 per dimension, then the values in row-major order.
"""

import gzip
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from genkit.errors import GenkitError

_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> torch.Tensor:
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"{path} is truncated or padded: shape {shape} needs {expected} bytes of data")
    values = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return torch.from_numpy(values.astype(dtype.newbyteorder("="), copy=True))


def read_idx_split(paths: Mapping[str, Path], prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, C, H, W) and labels (N,) of one split: the `<prefix>-images-*` and
    `<prefix>-labels-*` files among `paths` (file name -> path), as MNIST names them."""
    try:
        images = next(p for n, p in paths.items() if n.startswith(f"{prefix}-images"))
        labels = next(p for n, p in paths.items() if n.startswith(f"{prefix}-labels"))
    except StopIteration:
        raise GenkitError(
            f"No {prefix}-images-* and {prefix}-labels-* files among {', '.join(paths)}; "
            f"set data.splits to the files' name prefixes."
        ) from None
    try:
        x, y = read_idx(images), read_idx(labels)
    except (ValueError, OSError, EOFError) as err:  # truncated, not gzip, not IDX
        raise GenkitError(
            f"A data file cannot be read: {err}. Delete the damaged file ({images.name} or {labels.name} in "
            f"{images.parent}) so that genkit downloads it again, or replace it with the official one."
        ) from None
    return (x.unsqueeze(1) if x.dim() == 3 else x), y  # (N, H, W) grey -> (N, 1, H, W)


def write_idx(path: str | Path, values: np.ndarray) -> None:
    """Write an array in IDX format (gzipped if the name ends in .gz); used to make test data."""
    path = Path(path)
    code = {np.dtype(v).newbyteorder("="): k for k, v in _DTYPES.items()}[values.dtype.newbyteorder("=")]
    header = bytes([0, 0, code, values.ndim]) + np.array(values.shape, dtype=">i4").tobytes()
    payload = header + values.astype(_DTYPES[code]).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(payload)
