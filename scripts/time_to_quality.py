"""Time to quality: genkit's recipes end to end (command start to exit), beside what a user would
run instead, on the same machine in one sitting.

    python scripts/time_to_quality.py                      # both rows, one round each
    python scripts/time_to_quality.py --rows shakespeare --rounds 2

- shakespeare: `genkit train experiment=gpt_shakespeare_char_cpu` against
  `scripts/raw_gpt_loop.py`, nanoGPT's recipe as a plain PyTorch loop that evaluates like
  nanoGPT; both end with the exact loss of the whole val split. Rounds alternate which one runs
  first; the medians count.
- ptb: `genkit train experiment=<--ptb-recipe>` (default lstm_ptb) and its test perplexity,
  beside `scripts/raw_lstm_loop.py`, PyTorch's word_language_model example (2 tied layers of
  200, 6 epochs) as a plain loop, run in the same sitting (`--ptb-reference figure`: the
  example's figure measured on a 2-core CPU before, 806 s for test ppl 114.5, instead).

Each command runs in a fresh process, as a user types it; set GENKIT_DATA_DIR for offline data.
Writes a markdown table to stdout and the figures to --out (JSON).
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


def timed(cmd: list[str], log: Path) -> float:
    """Run cmd to completion (output to log); its wall time in seconds. Fails loudly."""
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
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


def genkit_run(recipe: str, work: Path, tag: str, metric: str, extra: list[str]) -> dict:
    run_dir = work / tag
    shutil.rmtree(run_dir, ignore_errors=True)
    cmd = [*GENKIT, "train", f"experiment={recipe}", f"hydra.run.dir={run_dir}", *extra]
    wall = timed(cmd, work / f"{tag}.log")
    return {"wall_s": round(wall, 1), metric: last_metric(run_dir, metric)}


def raw_run(work: Path, tag: str, steps: int | None) -> dict:
    log = work / f"{tag}.log"
    cmd = [sys.executable, str(ROOT / "scripts" / "raw_gpt_loop.py"), "--out", str(work / tag)]
    if steps:
        cmd += ["--steps", str(steps)]
    wall = timed(cmd, log)
    result = json.loads(log.read_text().strip().splitlines()[-1])
    return {"wall_s": round(wall, 1), "val/loss": result["val_loss"]}


def raw_lstm_run(work: Path, epochs: int, max_batches: int | None) -> dict:
    log = work / "raw_lstm.log"
    cmd = [sys.executable, str(ROOT / "scripts" / "raw_lstm_loop.py"), "--epochs", str(epochs)]
    if max_batches:
        cmd += ["--max-batches", str(max_batches)]
    wall = timed(cmd, log)
    result = json.loads(log.read_text().strip().splitlines()[-1])
    return {"wall_s": round(wall, 1), "test/ppl": result["test_ppl"]}


def shakespeare(work: Path, rounds: int, extra: list[str], steps: int | None) -> list[dict]:
    genkit, raw = [], []
    for r in range(rounds):
        order = ("genkit", "raw") if r % 2 == 0 else ("raw", "genkit")
        for who in order:
            if who == "genkit":
                genkit.append(
                    genkit_run("gpt_shakespeare_char_cpu", work, f"genkit_shakespeare_{r}", "val/loss", extra)
                )
            else:
                raw.append(raw_run(work, f"raw_shakespeare_{r}", steps))
            print(f"round {r + 1} {who}: {(genkit if who == 'genkit' else raw)[-1]}", file=sys.stderr, flush=True)
    g_wall = statistics.median(x["wall_s"] for x in genkit)
    r_wall = statistics.median(x["wall_s"] for x in raw)
    return [
        {
            "row": "shakespeare",
            "command": "genkit train experiment=gpt_shakespeare_char_cpu",
            "wall_s": g_wall,
            "metric": "val loss",
            "value": statistics.median(x["val/loss"] for x in genkit),
            "reference": "python scripts/raw_gpt_loop.py",
            "reference_wall_s": r_wall,
            "reference_value": statistics.median(x["val/loss"] for x in raw),
            "ratio": round(g_wall / r_wall, 3),
            "rounds": {"genkit": genkit, "raw": raw},
        }
    ]


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
    parser.add_argument("--rounds", type=int, default=1, help="Shakespeare rounds (alternating order)")
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
    if args.steps:  # genkit validates at the end of the shortened run, as the plain loop does
        args.overrides += [f"trainer.max_steps={args.steps}", f"trainer.val_check_interval={args.steps}"]
    if not os.environ.get("GENKIT_DATA_DIR"):
        print("GENKIT_DATA_DIR is not set: genkit and the plain loop will download the data", file=sys.stderr)
    work = Path(args.work or tempfile.mkdtemp(prefix="genkit-ttq-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for row in args.rows.split(","):
        if row == "shakespeare":
            rows += shakespeare(work, args.rounds, args.overrides, args.steps)
        elif row == "ptb":
            # --steps: the plain loop's epochs shortened to as many batches
            rows += ptb(work, args.ptb_recipe, args.overrides, args.ptb_reference, args.steps)
        else:
            sys.exit(f"unknown row {row!r}; choose from shakespeare, ptb")
    print("| command | wall | result | instead | its wall | its result | wall ratio |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| `{r['command']}` | {r['wall_s']:.0f} s | {r['metric']} {r['value']:.4g} | {r['reference']} | "
            f"{r['reference_wall_s']:.0f} s | {r['metric']} {r['reference_value']:.4g} | {r['ratio']:.2f}x |"
        )
    Path(args.out).write_text(json.dumps({"rows": rows, "work": str(work)}, indent=1) + "\n")
    print(f"figures: {args.out}; runs and logs: {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
