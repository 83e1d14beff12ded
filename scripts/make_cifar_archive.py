"""A synthetic CIFAR-10 archive in the official format, for benchmarks where the real one cannot
be downloaded: `cifar-10-python.tar.gz` with data_batch_1..5 (10,000 images each) and test_batch,
random 32x32 colour images and labels, written to <root>/cifar-10/. Prints the override that
points genkit at it (its SHA-256 differs from the official archive's).

python scripts/make_cifar_archive.py <root> [--per-batch 10000]
genkit bench model=gan data=cifar10 data.root=<root> "data.files={cifar-10-python.tar.gz: <sha256>}"
"""

import argparse
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

from genkit.data.download import sha256_of


def batch_bytes(rng: np.random.Generator, n: int) -> bytes:
    # protocol 4: bytes and numpy arrays pickle without the globals genkit's reader refuses
    batch = {
        b"data": rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8),
        b"labels": rng.integers(0, 10, n).tolist(),
    }
    return pickle.dumps(batch, protocol=4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--per-batch", type=int, default=10_000)
    args = parser.parse_args()
    folder = args.root / "cifar-10"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "cifar-10-python.tar.gz"
    rng = np.random.default_rng(0)
    with tarfile.open(path, "w:gz") as archive:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            data = batch_bytes(rng, args.per_batch)
            member = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    print(f'{path}\ndata.root={args.root} "data.files={{cifar-10-python.tar.gz: {sha256_of(path)}}}"')


if __name__ == "__main__":
    main()
