"""Which streaming library `genkit prepare` writes shards for: LitData, WebDataset or MosaicML
streaming, measured on the same items on this machine.

    python scripts/bench_shard_formats.py --items 50000 --tokens 1024 --out /tmp/shard-formats

Each library writes the same items (token blocks of --tokens uint16 ids, or --pixels square RGB
uint8 pictures with a label) into a folder of ~64 MB shards, then one DataLoader worker reads all
of them once, shuffled, in batches of 64. Every phase runs in its own process, so its peak
resident memory is its own (os.wait4's ru_maxrss). MosaicML streaming pins transformers<5 and
huggingface_hub<1, which genkit cannot take: give --mosaic-path, a folder it was installed into
with `pip install --no-deps --target <folder> mosaicml-streaming xxhash zstd python-snappy brotli
cramjam catalogue`, to measure it anyway. The results and the choice are in
docs/benchmarks/data.md.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BATCH, SHARD_BYTES = 64, 64 * 2**20


def items(args):
    rng = np.random.default_rng(0)
    for i in range(args.items):
        if args.pixels:
            yield i, rng.integers(0, 256, (args.pixels, args.pixels, 3), dtype=np.uint8), i % 10
        else:
            yield i, rng.integers(0, 50257, args.tokens, dtype=np.uint16), 0


def write(library, folder, args):
    if library == "litdata":
        from litdata.streaming.writer import BinaryWriter

        writer = BinaryWriter(str(folder), chunk_bytes=SHARD_BYTES)
        for i, x, y in items(args):
            writer[i] = {"x": x, "y": y}
        writer.done()
        writer.merge()
    elif library == "webdataset":
        import webdataset as wds

        with wds.ShardWriter(str(folder / "shard-%06d.tar"), maxsize=SHARD_BYTES, verbose=0) as sink:
            for i, x, y in items(args):
                sink.write({"__key__": f"{i:09d}", "x.npy": x, "y.cls": y})
    else:
        from streaming import MDSWriter

        shape = f"{args.pixels},{args.pixels},3" if args.pixels else f"{args.tokens}"
        dtype = "uint8" if args.pixels else "uint16"
        columns = {"x": f"ndarray:{dtype}:{shape}", "y": "int"}
        with MDSWriter(out=str(folder), columns=columns, size_limit=SHARD_BYTES) as sink:
            for _, x, y in items(args):
                sink.write({"x": x, "y": y})


def read(library, folder):
    from torch.utils.data import DataLoader

    if library == "litdata":
        from litdata import StreamingDataLoader, StreamingDataset

        loader = StreamingDataLoader(StreamingDataset(str(folder), shuffle=True), batch_size=BATCH, num_workers=1)
    elif library == "webdataset":
        import webdataset as wds

        urls = sorted(str(p) for p in folder.glob("*.tar"))
        dataset = wds.WebDataset(urls, shardshuffle=len(urls), empty_check=False).shuffle(1000).decode()
        loader = DataLoader(dataset.to_tuple("x.npy", "y.cls").batched(BATCH), batch_size=None, num_workers=1)
    else:
        from streaming import StreamingDataset

        dataset = StreamingDataset(local=str(folder), shuffle=True, batch_size=BATCH)
        loader = DataLoader(dataset, batch_size=BATCH, num_workers=1)
    n = 0
    for batch in loader:
        x = batch["x"] if isinstance(batch, dict) else batch[0]
        n += len(x)
    return n


def phase(library, which, folder, args):
    """One phase in a child process: its wall time and peak resident memory."""
    if library == "mosaic" and args.mosaic_path:
        sys.path.insert(0, args.mosaic_path)
    folder = Path(folder)
    start = time.perf_counter()
    n = write(library, folder, args) if which == "write" else read(library, folder)
    print(json.dumps({"seconds": time.perf_counter() - start, "items": n}))


def measure(library, which, folder, args):
    cmd = [sys.executable, __file__, "--phase", library, which, str(folder), *sys.argv[1:]]
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status:
        raise SystemExit(f"{library} {which} failed")
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss / 2**20


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--pixels", type=int, default=0, help="pictures of this side instead of token blocks")
    parser.add_argument("--out", default="/tmp/shard-formats")
    parser.add_argument("--mosaic-path", default="")
    parser.add_argument("--phase", nargs=3)
    args = parser.parse_args()
    if args.phase:
        return phase(*args.phase, args)
    libraries = ["litdata", "webdataset"] + (["mosaic"] if args.mosaic_path else [])
    print("| library | write s | read s | items/s read | MB on disk | write peak GB | read peak GB |")
    print("|---|---|---|---|---|---|---|")
    for library in libraries:
        folder = Path(args.out) / library
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        wrote, write_peak = measure(library, "write", folder, args)
        got, read_peak = measure(library, "read", folder, args)
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20
        print(
            f"| {library} | {wrote['seconds']:.1f} | {got['seconds']:.1f} | {got['items'] / got['seconds']:,.0f} "
            f"| {size:,.0f} | {write_peak:.2f} | {read_peak:.2f} |",
            flush=True,
        )
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
