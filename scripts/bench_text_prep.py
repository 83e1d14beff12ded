"""Peak memory and wall time of preparing (tokenising) text corpora of several sizes, and of a
one-step training run on them: the "Text" rows of docs/benchmarks/data.md.

The corpora are made from the shared data sets: Tiny Shakespeare, PTB's training text and the
WordNet definitions (JSON Lines, taken as text), written one after the other and again until the
file reaches the size asked for. Each size is measured in a process of its own under
`/usr/bin/time -v` (maximum resident set size).

    python scripts/bench_text_prep.py --sizes 100 1000 --out /tmp/textbench
    python scripts/bench_text_prep.py --sizes 100 --train     # also `genkit train ... max_steps=1`
    python scripts/bench_text_prep.py --sizes 1000 --shards   # also `genkit prepare` into shards from the
                                                              # prepared cache, and one step trained on them
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("GENKIT_DATA_DIR") or REPO.parent / "shared" / "data")
SOURCES = ["tinyshakespeare/input.txt", "ptb/ptb.train.txt", "wordnet/definitions.train.jsonl"]


def make_corpus(path: Path, megabytes: int) -> Path:
    size = megabytes * 1_000_000
    if path.is_file() and path.stat().st_size == size:
        return path
    parts = [(DATA / name).read_bytes() for name in SOURCES]
    with open(path, "wb") as f:
        while f.tell() < size:
            for part in parts:
                f.write(part + b"\n")
        f.truncate(size)
    return path


def prepare(corpus: str, cache: str, tokenizer: str, num_proc: str) -> None:
    """Run in the measured process: compose data=text as `genkit train` does and prepare it."""
    from hydra.utils import instantiate

    from genkit.training.config import compose_config

    overrides = ["model=lm", "data=text", f"data.path={corpus}", f"data.cache_dir={cache}",
                 f"data.tokenizer={tokenizer}", f"data.num_proc={num_proc}"]  # fmt: skip
    if tokenizer == "char":
        overrides.append("data.vocab_size=256")
    cfg = compose_config("train", overrides, Path(cache) / "run")
    started = time.perf_counter()
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup()
    tokens = sum(len(ids) for ids in dm.ids.values())
    print(f"PREPARED tokens={tokens} seconds={time.perf_counter() - started:.1f}")


def measured(command: list[str], env: dict | None = None) -> dict:
    out = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, **(env or {})})  # fmt: skip
    if out.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{out.stderr[-3000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1)) / 1e6
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", out.stderr).group(1)
    seconds = sum(float(x) * 60**i for i, x in enumerate(reversed(wall.split(":"))))
    return {"rss_gb": rss, "wall_s": seconds, "stdout": out.stdout}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100], help="corpus sizes in MB")
    parser.add_argument("--out", type=Path, default=Path("/tmp/genkit-textbench"))
    parser.add_argument("--tokenizer", default="bpe", choices=["bpe", "word", "char"])
    parser.add_argument("--num-proc", default="null", help="data.num_proc (null: one per core)")
    parser.add_argument("--train", action="store_true", help="also time `genkit train ... max_steps=1` on each")
    parser.add_argument("--shards", action="store_true", help="also `genkit prepare` shards, and train a step on them")
    parser.add_argument("--keep", action="store_true", help="keep the corpora and caches")
    parser.add_argument("--prepare", nargs=2, help=argparse.SUPPRESS)  # the measured child
    args = parser.parse_args()
    if args.prepare:
        prepare(*args.prepare, args.tokenizer, args.num_proc)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        "?",
    )
    print(f"CPU: {cpu}, {len(os.sched_getaffinity(0))} cores; tokenizer={args.tokenizer}, num_proc={args.num_proc}")
    print("| corpus | tokens | prepare: wall | MB/s | peak RSS | train max_steps=1: wall | peak RSS |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        corpus = make_corpus(args.out / f"corpus_{size}MB.txt", size)
        cache = args.out / f"cache_{size}MB_{args.tokenizer}"
        shutil.rmtree(cache, ignore_errors=True)
        prep = measured([sys.executable, __file__, "--tokenizer", args.tokenizer, "--num-proc", args.num_proc,
                         "--prepare", str(corpus), str(cache)])  # fmt: skip
        tokens, seconds = re.search(r"PREPARED tokens=(\d+) seconds=([\d.]+)", prep["stdout"]).groups()
        mb = corpus.stat().st_size / 1e6
        row = f"| {mb:.0f} MB | {int(tokens) / 1e6:.1f} M | {prep['wall_s']:.0f} s | {mb / float(seconds):.1f} | "
        row += f"{prep['rss_gb']:.2f} GB |"
        if args.train:  # the cache is ready: this is the training run's own memory
            run = measured([str(Path(sys.executable).with_name("genkit")), "train", "model=lm", "data=text",
                            f"data.path={corpus}", f"data.cache_dir={cache}", f"data.tokenizer={args.tokenizer}",
                            *(["data.vocab_size=256"] if args.tokenizer == "char" else []),
                            "trainer.max_steps=1", "trainer.max_epochs=1", "++trainer.limit_val_batches=2",
                            f"hydra.run.dir={args.out / f'run_{size}'}"])  # fmt: skip
            row += f" {run['wall_s']:.0f} s | {run['rss_gb']:.2f} GB |"
        else:
            row += " | |"
        if args.shards:  # from the prepared cache: the copy into shards, then a step trained on them
            shards = args.out / f"shards_{size}MB"
            shutil.rmtree(shards, ignore_errors=True)
            genkit = str(Path(sys.executable).with_name("genkit"))
            text = [f"data.path={corpus}", f"data.cache_dir={cache}", f"data.tokenizer={args.tokenizer}",
                    *(["data.vocab_size=256"] if args.tokenizer == "char" else [])]  # fmt: skip
            made = measured([genkit, "prepare", "data=text", *text, f"out={shards}"])
            run = measured([genkit, "train", "model=lm", "data=text_shards", f"data.path={shards}",
                            "trainer.max_steps=1", "trainer.max_epochs=1", "++trainer.limit_val_batches=2",
                            f"hydra.run.dir={args.out / f'shards_run_{size}'}"])  # fmt: skip
            row += f" shards: {made['wall_s']:.0f} s, {made['rss_gb']:.2f} GB; step on them: {run['wall_s']:.0f} s, "
            row += f"{run['rss_gb']:.2f} GB |"
            if not args.keep:
                shutil.rmtree(shards, ignore_errors=True)
        print(row, flush=True)
        if not args.keep:
            shutil.rmtree(cache, ignore_errors=True)
            corpus.unlink()


if __name__ == "__main__":
    main()
