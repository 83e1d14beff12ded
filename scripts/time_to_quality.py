"""Time to quality: genkit's recipes end to end (command start to exit), beside what a user would
run instead, on the same machine in one sitting.

    python scripts/time_to_quality.py                      # both rows, 3 rounds at 1 and 2 threads
    python scripts/time_to_quality.py --rows shakespeare --rounds 5 --threads 1,2 --nanogpt ~/nanoGPT

- shakespeare: `genkit train experiment=gpt_shakespeare_char_cpu` against
  `scripts/raw_gpt_loop.py`, nanoGPT's recipe as a plain PyTorch loop that evaluates like
  nanoGPT (both end with the exact loss of the whole val split), and, given a nanoGPT checkout
  (--nanogpt), nanoGPT's own train.py with the CPU command of its README (its data prepared from
  genkit's copy of Tiny Shakespeare; its val loss is its 20-batch estimate). Interleaved: each
  round runs every contender at every thread count (OMP_NUM_THREADS), the order rotating from
  round to round; the table gives medians and the spread (min-max), the wall ratios of the
  medians, and the model FLOPs utilisation of each whole command: the training FLOPs of its
  steps over its wall, against this CPU's fastest matmul (fp32 or bf16, genkit's probe,
  genkit.runtime.time_matmuls, at the same thread count).
- ptb: `genkit train experiment=<--ptb-recipe>` (default lstm_ptb) and its test perplexity,
  beside `scripts/raw_lstm_loop.py`, PyTorch's word_language_model example (2 tied layers of
  200, 6 epochs) as a plain loop, run once each in the same sitting (`--ptb-reference figure`:
  the example's figure measured on a 2-core CPU before, 806 s for test ppl 114.5, instead).

Each command runs in a fresh process, as a user types it; set GENKIT_DATA_DIR for offline data.
Writes markdown tables to stdout and the figures to --out (JSON).
"""

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENKIT = [sys.executable, "-m", "genkit.cli"]
# PyTorch's word_language_model example (2 layers of 200 units, tied, dropout 0.2, SGD lr 20,
# batch 20, BPTT 35) run for 806 s on a 2-core CPU: the figure genkit's PTB recipe must beat
PTB_REFERENCE = {"command": "pytorch/examples word_language_model (2x200 LSTM)", "wall_s": 806.0, "test_ppl": 114.5}
PTB_REFERENCE_EPOCHS = 6  # the example's epochs in that figure


def threads_env(threads: int | None) -> dict | None:
    """The environment of a child process that computes on `threads` threads (None: torch's default)."""
    return {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else None


def timed(cmd: list[str], log: Path, threads: int | None = None, cwd: Path = ROOT) -> float:
    """Run cmd to completion (output to log) on `threads` threads (OMP_NUM_THREADS; None: torch's
    default); its wall time in seconds. Fails loudly."""
    env = threads_env(threads)
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed with status {proc.returncode}; see {log}")
    return wall


def last_metric(run_dir: Path, name: str) -> float:
    """The last value of `name` in a genkit run's metrics.csv."""
    with open(run_dir / "metrics.csv") as f:
        values = [row[name] for row in csv.DictReader(f) if row.get(name)]
    if not values:
        sys.exit(f"{run_dir / 'metrics.csv'} has no {name}")
    return float(values[-1])


def genkit_run(recipe: str, work: Path, tag: str, metric: str, extra: list[str], threads: int | None = None) -> dict:
    run_dir = work / tag
    shutil.rmtree(run_dir, ignore_errors=True)
    cmd = [*GENKIT, "train", f"experiment={recipe}", f"hydra.run.dir={run_dir}", *extra]
    wall = timed(cmd, work / f"{tag}.log", threads)
    return {"wall_s": round(wall, 1), metric: last_metric(run_dir, metric)}


def raw_run(work: Path, tag: str, steps: int | None, threads: int | None = None) -> dict:
    log = work / f"{tag}.log"
    cmd = [sys.executable, str(ROOT / "scripts" / "raw_gpt_loop.py"), "--out", str(work / tag)]
    if steps:
        cmd += ["--steps", str(steps)]
    wall = timed(cmd, log, threads)
    result = json.loads(log.read_text().strip().splitlines()[-1])
    return {"wall_s": round(wall, 1), "val/loss": result["val_loss"]}


def nanogpt_data(checkout: Path) -> None:
    """nanoGPT's data/shakespeare_char/{train,val}.bin, made by its own prepare.py from genkit's
    copy of Tiny Shakespeare (prepare.py downloads the text only when input.txt is missing)."""
    folder = checkout / "data" / "shakespeare_char"
    if (folder / "val.bin").is_file():
        return
    copy = Path(os.environ.get("GENKIT_DATA_DIR", "")) / "tinyshakespeare" / "input.txt"
    if copy.is_file() and not (folder / "input.txt").is_file():
        shutil.copyfile(copy, folder / "input.txt")
    subprocess.run([sys.executable, "prepare.py"], cwd=folder, check=True, capture_output=True)


def nanogpt_val_loss(log: str) -> float:
    """The val loss of nanoGPT's last evaluation: `step 2000: train loss 1.7648, val loss 1.8857`."""
    lines = [line for line in log.splitlines() if line.startswith("step ") and ", val loss " in line]
    if not lines:
        sys.exit("nanoGPT's log has no `step N: train loss ..., val loss ...` line")
    return float(lines[-1].rsplit("val loss ", 1)[1])


def nanogpt_run(checkout: Path, work: Path, tag: str, steps: int | None, threads: int | None = None) -> dict:
    """nanoGPT's train.py with the CPU command of its README (2,000 iterations unless `steps`)."""
    iters = steps or 2000
    log = work / f"{tag}.log"
    cmd = [
        sys.executable, "train.py", "config/train_shakespeare_char.py", "--device=cpu", "--compile=False",
        "--eval_iters=20", "--log_interval=1", "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4",
        "--n_embd=128", f"--max_iters={iters}", f"--lr_decay_iters={iters}", "--dropout=0.0", f"--out_dir={work / tag}",
    ]  # fmt: skip
    if steps:  # a shortened run evaluates at its end too (nanoGPT evaluates every eval_interval steps)
        cmd.append(f"--eval_interval={iters}")
    wall = timed(cmd, log, threads, cwd=checkout)
    return {"wall_s": round(wall, 1), "val/loss": nanogpt_val_loss(log.read_text())}


def raw_lstm_run(work: Path, epochs: int, max_batches: int | None) -> dict:
    log = work / "raw_lstm.log"
    cmd = [sys.executable, str(ROOT / "scripts" / "raw_lstm_loop.py"), "--epochs", str(epochs)]
    if max_batches:
        cmd += ["--max-batches", str(max_batches)]
    wall = timed(cmd, log)
    result = json.loads(log.read_text().strip().splitlines()[-1])
    return {"wall_s": round(wall, 1), "test/ppl": result["test_ppl"]}


def cpu_peak_gflops(threads: int | None) -> dict:
    """This CPU's fp32 and bf16 matmul GFLOP/s on `threads` threads (genkit's probe), in a fresh
    process so that the thread count takes."""
    code = "import json; from genkit.runtime import time_matmuls; print(json.dumps(time_matmuls()))"
    env = threads_env(threads)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    fp32, bf16 = json.loads(out.stdout.strip().splitlines()[-1])
    return {"fp32": round(fp32, 1), "bf16": round(bf16, 1)}


def build_recipe(recipe: str, extra: list[str]):
    """(config, parts) of `genkit train experiment=<recipe>` with the extra overrides, built as the
    CLI builds them but without a trainer (the model and its data module)."""
    from genkit.training.build import build
    from genkit.training.config import compose_config

    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_config("train", [f"experiment={recipe}", *extra], Path(tmp))
        return cfg, build(cfg, with_trainer=False)


def train_flops(recipe: str, steps: int, extra: list[str]) -> float:
    """The training FLOPs of `steps` steps of the recipe's network (GenerativeModel.flops_per_step)."""
    cfg, parts = build_recipe(recipe, extra)
    return parts.model.flops_per_step(cfg.data.batch_size) * steps


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def shakespeare(work: Path, rounds: int, threads: list[int], extra: list[str], steps: int | None,
                nanogpt: Path | None) -> list[dict]:  # fmt: skip
    recipe = "gpt_shakespeare_char_cpu"
    contenders = {
        "genkit": lambda tag, t: genkit_run(recipe, work, tag, "val/loss", extra, t),
        "plain loop": lambda tag, t: raw_run(work, tag, steps, t),
    }
    if nanogpt:
        nanogpt_data(nanogpt)
        contenders["nanoGPT"] = lambda tag, t: nanogpt_run(nanogpt, work, tag, steps, t)
    names = list(contenders)
    runs = {(name, t): [] for name in names for t in threads}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]  # who goes first rotates
        for t in threads:
            for name in order:
                tag = f"{name.replace(' ', '_')}_shakespeare_{t}t_{r}"
                runs[name, t].append(contenders[name](tag, t))
                print(f"round {r + 1}, {t} threads, {name}: {runs[name, t][-1]}", file=sys.stderr, flush=True)
    flops = train_flops(recipe, steps or 2000, extra)
    rows = []
    for t in threads:
        peak = cpu_peak_gflops(t)
        walls = {name: spread([x["wall_s"] for x in runs[name, t]]) for name in names}
        losses = {name: statistics.median(x["val/loss"] for x in runs[name, t]) for name in names}
        rows.append(
            {
                "row": "shakespeare",
                "threads": t,
                "command": f"genkit train experiment={recipe}",
                "wall_s": walls["genkit"]["median"],
                "metric": "val loss",
                "value": losses["genkit"],
                "reference": "python scripts/raw_gpt_loop.py",
                "reference_wall_s": walls["plain loop"]["median"],
                "reference_value": losses["plain loop"],
                "ratio": round(walls["genkit"]["median"] / walls["plain loop"]["median"], 3),
                "walls": walls,
                "values": losses,
                "ratios": {n: round(walls["genkit"]["median"] / walls[n]["median"], 3) for n in names[1:]},
                "train_tflop": round(flops / 1e12, 2),
                "peak_gflops": peak,
                # end to end: the steps' FLOPs over the whole command's wall, against the fastest matmul
                "mfu": {n: round(flops / walls[n]["median"] / (max(peak.values()) * 1e9), 4) for n in names},
                "rounds": {n: runs[n, t] for n in names},
            }
        )
    return rows


def shakespeare_table(rows: list[dict]) -> None:
    print("| threads | contender | wall, median (min-max) | val loss | genkit's wall / its wall | MFU end to end |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        for name, wall in row["walls"].items():
            ratio = f"{row['ratios'][name]:.2f}x" if name in row["ratios"] else ""
            print(
                f"| {row['threads']} | {name} | {wall['median']:.1f} s ({wall['min']:.1f}-{wall['max']:.1f}) | "
                f"{row['values'][name]:.4f} | {ratio} | {100 * row['mfu'][name]:.1f}% |"
            )
    peaks = ", ".join(
        f"{r['threads']} threads {r['peak_gflops']['fp32']:.0f} / {r['peak_gflops']['bf16']:.0f}" for r in rows
    )
    print(
        f"\nCPU matmul peak, fp32 / bf16 GFLOP/s: {peaks}; training FLOPs of the recipe: {rows[0]['train_tflop']} TFLOP"
    )


def ptb(work: Path, recipe: str, extra: list[str], reference: str, max_batches: int | None) -> list[dict]:
    run = genkit_run(recipe, work, f"genkit_{recipe}", "test/ppl", extra)
    print(f"{recipe}: {run}", file=sys.stderr, flush=True)
    if reference == "measured":
        raw = raw_lstm_run(work, PTB_REFERENCE_EPOCHS, max_batches)
        print(f"raw LSTM loop: {raw}", file=sys.stderr, flush=True)
        ref = {"command": "python scripts/raw_lstm_loop.py", "wall_s": raw["wall_s"], "test_ppl": raw["test/ppl"]}
    else:
        ref = PTB_REFERENCE
    return [
        {
            "row": "ptb",
            "command": f"genkit train experiment={recipe}",
            "wall_s": run["wall_s"],
            "metric": "test ppl",
            "value": run["test/ppl"],
            "reference": ref["command"],
            "reference_wall_s": ref["wall_s"],
            "reference_value": ref["test_ppl"],
            "ratio": round(run["wall_s"] / ref["wall_s"], 3),
        }
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="shakespeare,ptb", help="comma-separated: shakespeare, ptb")
    parser.add_argument("--rounds", type=int, default=3, help="Shakespeare rounds (the order rotating)")
    parser.add_argument("--threads", default="1,2", help="Shakespeare: comma-separated thread counts")
    parser.add_argument("--nanogpt", type=Path, default=None, help="Shakespeare: a nanoGPT checkout to run too")
    parser.add_argument("--ptb-recipe", default="lstm_ptb")
    parser.add_argument(
        "--ptb-reference", choices=("measured", "figure"), default="measured",
        help="PTB row: run scripts/raw_lstm_loop.py in this sitting, or quote the example's figure",
    )  # fmt: skip
    parser.add_argument("--work", default=None, help="run directories and logs (default: a temporary folder)")
    parser.add_argument("--out", default="time_to_quality.json")
    parser.add_argument("--steps", type=int, default=None, help="fewer steps, for a quick check of the script")
    parser.add_argument("overrides", nargs="*", help="extra overrides for the genkit runs")
    args = parser.parse_args()
    if args.steps:  # genkit validates at the end of the shortened run, as the plain loops do
        args.overrides += [f"trainer.max_steps={args.steps}", f"trainer.val_check_interval={args.steps}"]
    ptb_overrides = list(args.overrides)
    if args.steps:  # as the plain LSTM loop's --max-batches: as many batches in each evaluation
        ptb_overrides += [f"trainer.limit_val_batches={args.steps}", f"trainer.limit_test_batches={args.steps}"]
    if not os.environ.get("GENKIT_DATA_DIR"):
        print("GENKIT_DATA_DIR is not set: genkit and the plain loop will download the data", file=sys.stderr)
    work = Path(args.work or tempfile.mkdtemp(prefix="genkit-ttq-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for row in args.rows.split(","):
        if row == "shakespeare":
            threads = [int(t) for t in args.threads.split(",")]
            rows += shakespeare(work, args.rounds, threads, args.overrides, args.steps, args.nanogpt)
        elif row == "ptb":
            # --steps: the plain loop's epochs shortened to as many batches
            rows += ptb(work, args.ptb_recipe, ptb_overrides, args.ptb_reference, args.steps)
        else:
            sys.exit(f"unknown row {row!r}; choose from shakespeare, ptb")
    shakespeare_rows = [r for r in rows if r["row"] == "shakespeare"]
    if shakespeare_rows:
        shakespeare_table(shakespeare_rows)
        print()
    print("| command | threads | wall | result | instead | its wall | its result | wall ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        cells = [
            f"`{r['command']}`", str(r.get("threads") or "default"), f"{r['wall_s']:.0f} s",
            f"{r['metric']} {r['value']:.4g}", r["reference"], f"{r['reference_wall_s']:.0f} s",
            f"{r['metric']} {r['reference_value']:.4g}", f"{r['ratio']:.2f}x",
        ]  # fmt: skip
        print("| " + " | ".join(cells) + " |")
    Path(args.out).write_text(json.dumps({"rows": rows, "work": str(work)}, indent=1) + "\n")
    print(f"figures: {args.out}; runs and logs: {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
