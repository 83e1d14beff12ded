"""A run's validation scores against the minutes it had run, read from its genkit.log (every
validation line is time-stamped) and status.json (when it started): the curve of a task score
against training time, e.g. the WordNet supersense recipes' macro F1 (docs/text-tasks.md).

    python scripts/task_curve.py outputs/<run> --metric val/macro_f1 --before outputs/<pre-training run>

--before adds the minutes of runs that came first (a pre-training run) to this run's, so the
curve counts the CPU time of the whole recipe. Prints a Markdown table; --png draws it too.
"""

import argparse
import datetime as dt
import json
import re
from pathlib import Path

VALIDATION = re.compile(r"^\[(\d\d):(\d\d):(\d\d)\]\[INFO\] epoch \d+\s+step (\d+)\s+validation\s+(.*)$")


def run_minutes(run: Path) -> float:
    """Minutes from a run's start to its end (status.json)."""
    status = json.loads((run / "status.json").read_text())
    return (status["ended"] - status["started"]) / 60


def validations(run: Path, metric: str) -> list[tuple[int, float, float]]:
    """(step, minutes since the run started, metric) at every validation of the run."""
    started = dt.datetime.fromtimestamp(json.loads((run / "status.json").read_text())["started"])
    points = []
    for line in (run / "genkit.log").read_text().splitlines():
        match = VALIDATION.match(line)
        if not match:
            continue
        hh, mm, ss, step, values = match.groups()
        scores = dict(item.split("=", 1) for item in values.split())
        if metric not in scores:
            continue
        at = started.replace(hour=int(hh), minute=int(mm), second=int(ss), microsecond=0)
        if at < started - dt.timedelta(seconds=1):  # the log line is from the next day
            at += dt.timedelta(days=1)
        points.append((int(step), (at - started).total_seconds() / 60, float(scores[metric])))
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories, one curve each")
    parser.add_argument("--metric", default="val/macro_f1")
    parser.add_argument("--before", nargs="*", type=Path, default=[], help="runs whose minutes come first")
    parser.add_argument("--png", type=Path, help="also draw the curves into this file")
    parser.add_argument("--target", type=float, help="draw a target score as a dashed line")
    args = parser.parse_args()
    offset = sum(run_minutes(run) for run in args.before)
    curves = {}
    for run in args.runs:
        curves[run.name] = [(step, offset + minutes, value) for step, minutes, value in validations(run, args.metric)]
        first = ", ".join(r.name for r in args.before)
        print(f"\n{run.name} (minutes include {offset:.1f} of {first})" if offset else f"\n{run.name}")
        print(f"| step | minutes | {args.metric} |\n|---|---|---|")
        for step, minutes, value in curves[run.name]:
            print(f"| {step} | {minutes:.1f} | {value:.3f} |")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for name, points in curves.items():
            ax.plot([m for _, m, _ in points], [v for _, _, v in points], marker="o", label=name)
        if args.target is not None:
            ax.axhline(args.target, color="grey", linestyle="--", label=f"target {args.target}")
        ax.set_xlabel("minutes on the CPU (wall clock)")
        ax.set_ylabel(args.metric)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.png, dpi=120)
        print(f"\n{args.png}")


if __name__ == "__main__":
    main()
