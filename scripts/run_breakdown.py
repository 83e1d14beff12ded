"""Where the wall time of a whole `genkit train` goes, and what the training step itself spends
its time on: start-up to the first step, steps, data, validation, sample writing, checkpoints,
progress and the other callbacks, the loop between them, and the exit.

    python scripts/run_breakdown.py                                # the Tiny Shakespeare recipe, 1 and 2 threads
    python scripts/run_breakdown.py --threads 2 --ops 50 trainer.max_steps=500

The run is `genkit train experiment=<--recipe>` in a fresh process, as a user types it, with
OMP_NUM_THREADS set, and Lightning's profiler hook points (`trainer.profiler`) recording the start
and end of every action they time (IntervalProfiler below: Lightning's own profilers keep
durations only, and the breakdown needs to know which action runs inside which). Every moment
from the process's start to its exit is given to one category, the innermost first (a
checkpoint written during validation counts as a checkpoint).

--ops N: torch.profiler over N training steps of the same network and optimizer in the
hand-written loop (genkit/models/reference/gpt_loop.py, no Lightning), its operators grouped into
matrix products, attention, the optimizer and the rest, and the matmuls' achieved FLOP/s against
this CPU's measured peak (genkit.runtime.time_matmuls at the same thread count).

Prints markdown tables; writes the figures to --out (JSON). Set GENKIT_DATA_DIR for offline data.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from lightning.pytorch.profilers import Profiler
from time_to_quality import build_recipe, threads_env  # scripts/ is on the path of both processes

ROOT = Path(__file__).resolve().parents[1]
# the categories, innermost first: a moment inside several actions counts for the first listed
CATEGORIES = (
    ("checkpoints", lambda a: a == "save_checkpoint" or "Checkpoint" in a),
    ("samples", lambda a: "SampleWriter" in a),
    ("steps", lambda a: a == "run_training_batch"),
    ("data", lambda a: a.endswith("train_dataloader_next")),
    ("validation", lambda a: a == "validation"),
    ("progress", lambda a: "Progress" in a),
    ("other callbacks", lambda a: a.startswith("[Callback]")),
)


class IntervalProfiler(Profiler):
    """Records (action, start, end) for every action Lightning times, and writes them as JSON to
    `out` when the run ends (times: seconds since the epoch, as the launching script's clock)."""

    def __init__(self, out: str):
        super().__init__()
        self.out = out
        self.open: dict[str, list[float]] = defaultdict(list)
        self.intervals: list[tuple[str, float, float]] = []

    def start(self, action_name: str) -> None:
        self.open[action_name].append(time.time())

    def stop(self, action_name: str) -> None:
        if self.open[action_name]:
            self.intervals.append((action_name, self.open[action_name].pop(), time.time()))

    def summary(self) -> str:
        return ""

    def teardown(self, stage: str | None) -> None:
        Path(self.out).write_text(json.dumps({"stage": stage, "intervals": self.intervals}))
        super().teardown(stage)


def validation_windows(intervals: list) -> list[tuple[str, float, float]]:
    """Each validation run as one interval: from the module's on_validation_start to its
    on_validation_end (the loop's own fetching, steps, metrics and logging between them)."""
    starts = sorted(
        s for a, s, _ in intervals if a.startswith("[LightningModule]") and a.endswith(".on_validation_start")
    )
    ends = sorted(e for a, _, e in intervals if a.startswith("[LightningModule]") and a.endswith(".on_validation_end"))
    return [("validation", s, e) for s, e in zip(starts, ends, strict=False)]


def categorise(intervals: list, t0: float, t_end: float) -> dict[str, float]:
    """Seconds of [t0, t_end] per category; what no action covers is start-up before the first
    step, exit after the last action Lightning times (genkit's charts and records of the run, the
    interpreter's exit), and the loop (logging, bookkeeping) in between."""
    rank = {name: i for i, (name, _) in enumerate(CATEGORIES)}
    events = []
    for action, start, end in [*intervals, *validation_windows(intervals)]:
        category = next((name for name, match in CATEGORIES if match(action)), None)
        if category is not None:
            events += [(start, 1, rank[category]), (end, -1, rank[category])]
    first_step = min((s for a, s, _ in intervals if a == "run_training_batch"), default=t_end)
    last_action = max((e for _, _, e in intervals), default=t0)
    events += [(first_step, 0, 0), (last_action, 0, 0)]  # segments end there, to be named by side
    events.sort()
    seconds: dict[str, float] = defaultdict(float)
    depth = [0] * len(CATEGORIES)
    now = t0
    for when, delta, i in [*events, (t_end, 0, 0)]:
        when = min(max(when, t0), t_end)
        if when > now:
            inner = next((k for k, d in enumerate(depth) if d > 0), None)
            if inner is not None:
                seconds[CATEGORIES[inner][0]] += when - now
            elif now < first_step:
                seconds["start-up"] += when - now
            elif now >= last_action:
                seconds["exit"] += when - now
            else:
                seconds["loop and logging"] += when - now
            now = when
        depth[i] += delta
    return dict(seconds)


def run_recipe(recipe: str, threads: int, work: Path, overrides: list[str]) -> dict:
    run_dir, record = work / f"run_{threads}t", work / f"intervals_{threads}t.json"
    env = {**threads_env(threads), "PYTHONPATH": f"{ROOT / 'scripts'}{os.pathsep}{ROOT}"}
    cmd = [
        sys.executable, "-m", "genkit.cli", "train", f"experiment={recipe}", f"hydra.run.dir={run_dir}",
        "+trainer.profiler._target_=run_breakdown.IntervalProfiler", f"+trainer.profiler.out={record}", *overrides,
    ]  # fmt: skip
    t0 = time.time()
    with open(work / f"run_{threads}t.log", "w") as log:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    t_end = time.time()
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed with status {proc.returncode}; see {work / f'run_{threads}t.log'}")
    intervals = json.loads(record.read_text())["intervals"]
    steps = sum(1 for a, _, _ in intervals if a == "run_training_batch")
    return {"threads": threads, "wall_s": t_end - t0, "steps": steps, "seconds": categorise(intervals, t0, t_end)}


# torch.profiler operator names, grouped (the first group whose words appear in the name wins)
OP_GROUPS = (
    ("matrix products", ("addmm", "aten::mm", "aten::bmm", "matmul", "aten::linear")),
    ("attention", ("attention", "softmax")),
    ("optimizer", ("adam", "_foreach", "sgd")),
)


def profile_ops(recipe: str, threads: int, steps: int, overrides: list[str]) -> dict:
    """torch.profiler over `steps` steps of the recipe's network and optimizer in the
    hand-written loop; self CPU time per operator group, and the matmuls' FLOP/s."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from genkit.runtime import time_matmuls

    torch.set_num_threads(threads)
    cfg, parts = build_recipe(recipe, overrides)
    bf16 = str(cfg.trainer.precision).startswith("bf16")
    loop = parts.model.reference_loop(parts.datamodule.reference_data(), cfg.data.batch_size, torch.device("cpu"), bf16)
    if loop is None:
        sys.exit(f"experiment={recipe} has no hand-written loop to profile (GenerativeModel.reference_loop)")
    for _ in range(10):
        loop.step()
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            loop.step()
        wall = time.perf_counter() - start
    groups: dict[str, float] = defaultdict(float)
    matmul_flops = 0.0
    for event in prof.key_averages():
        group = next((g for g, words in OP_GROUPS if any(w in event.key.lower() for w in words)), "the rest")
        groups[group] += event.self_cpu_time_total / 1e6
        if group == "matrix products":
            matmul_flops += event.flops or 0
    fp32, bf16_peak = time_matmuls()
    model_flops = parts.model.flops_per_step(cfg.data.batch_size) * steps
    matmul_s = groups["matrix products"]
    return {
        "threads": threads,
        "steps": steps,
        "step_ms": 1000 * wall / steps,
        "self_cpu_s": dict(groups),
        "matmul_gflops": matmul_flops / matmul_s / 1e9 if matmul_s else None,
        "model_gflops": model_flops / wall / 1e9,
        "peak_gflops": {"fp32": fp32, "bf16": bf16_peak},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="gpt_shakespeare_char_cpu")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (OMP_NUM_THREADS)")
    parser.add_argument("--ops", type=int, default=0, help="also profile this many steps' operators (0: no)")
    parser.add_argument("--work", default=None, help="run directories and logs (default: a temporary folder)")
    parser.add_argument("--out", default="run_breakdown.json")
    parser.add_argument("overrides", nargs="*", help="extra overrides for the genkit run")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="genkit-breakdown-"))
    work.mkdir(parents=True, exist_ok=True)
    threads = [int(t) for t in args.threads.split(",")]
    runs = [run_recipe(args.recipe, t, work, args.overrides) for t in threads]
    names = ["start-up", *(name for name, _ in CATEGORIES), "loop and logging", "exit"]
    print(f"`genkit train experiment={args.recipe} {' '.join(args.overrides)}`".replace(" `", "`"))
    print()
    print("| where | " + " | ".join(f"{r['threads']} thread{'s' * (r['threads'] > 1)}" for r in runs) + " |")
    print("|---|" + "---|" * len(runs))
    for name in names:
        cells = [
            f"{r['seconds'].get(name, 0.0):.1f} s ({100 * r['seconds'].get(name, 0.0) / r['wall_s']:.0f}%)"
            for r in runs
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("| whole command | " + " | ".join(f"{r['wall_s']:.1f} s" for r in runs) + " |")
    print(
        "| steps/s while stepping | "
        + " | ".join(f"{r['steps'] / r['seconds'].get('steps', 1):.1f}" for r in runs)
        + " |"
    )
    ops = [profile_ops(args.recipe, t, args.ops, args.overrides) for t in threads] if args.ops else []
    if ops:
        print()
        groups = sorted({g for o in ops for g in o["self_cpu_s"]})
        print("| the step (hand-written loop, torch.profiler) | " + " | ".join(f"{o['threads']} t" for o in ops) + " |")
        print("|---|" + "---|" * len(ops))
        print("| ms per step | " + " | ".join(f"{o['step_ms']:.1f}" for o in ops) + " |")
        for g in groups:
            cells = [f"{100 * o['self_cpu_s'].get(g, 0) / sum(o['self_cpu_s'].values()):.0f}%" for o in ops]
            print(f"| {g} (share of operator time) | " + " | ".join(cells) + " |")
        print("| matmuls' GFLOP/s | " + " | ".join(f"{o['matmul_gflops'] or 0:.0f}" for o in ops) + " |")
        print("| model GFLOP/s over the step | " + " | ".join(f"{o['model_gflops']:.0f}" for o in ops) + " |")
        peaks = [f"{o['peak_gflops']['fp32']:.0f} / {o['peak_gflops']['bf16']:.0f}" for o in ops]
        print("| CPU matmul peak, fp32 / bf16 GFLOP/s | " + " | ".join(peaks) + " |")
    Path(args.out).write_text(json.dumps({"runs": runs, "ops": ops, "work": str(work)}, indent=1) + "\n")
    print(f"figures: {args.out}; runs and logs: {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
