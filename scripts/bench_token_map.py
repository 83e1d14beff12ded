"""Resident memory of training windows drawn from a memory-mapped token file, with the file mapped
once for the run against mapped again for each batch (genkit.data.text.TrainWindows does the latter).

    python scripts/bench_token_map.py --mb 400 --batches 20000

Writes --mb of random uint16 token ids to --file (once), then draws --batches random batches of 64
windows of 257 tokens in a child process per way, and prints each one's resident memory before and
after (VmRSS). The results are in docs/benchmarks/data.md.
"""

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch


def rss_mb() -> float:
    return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) / 1024


def draw(file: str, batches: int, kept_open: bool) -> None:
    import genkit.data.text
    from genkit.data.text import TrainWindows

    ids = np.memmap(file, dtype=np.uint16, mode="r")
    windows = TrainWindows(ids, 256)
    if kept_open:  # index the map opened for the run, as before
        genkit.data.text.mapped_again = lambda ids: ids
    before, generator = rss_mb(), torch.Generator().manual_seed(0)
    for _ in range(batches):
        windows.__getitems__(torch.randint(0, len(windows), (64,), generator=generator).tolist())
    way = "one map kept open" if kept_open else "a map per batch"
    print(f"{way}: {before:,.0f} MB before, {rss_mb():,.0f} MB after {batches:,} batches", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=400)
    parser.add_argument("--batches", type=int, default=20_000)
    parser.add_argument("--file", default="/tmp/bench_token_map.bin")
    parser.add_argument("--way", choices=["kept", "per-batch"])
    args = parser.parse_args()
    if args.way:
        return draw(args.file, args.batches, args.way == "kept")
    if not Path(args.file).is_file() or Path(args.file).stat().st_size != args.mb * 10**6:
        np.random.default_rng(0).integers(0, 50_000, args.mb * 10**6 // 2, dtype=np.uint16).tofile(args.file)
    for way in ("kept", "per-batch"):
        subprocess.run([sys.executable, __file__, "--way", way, *sys.argv[1:]], check=True)


if __name__ == "__main__":
    main()
