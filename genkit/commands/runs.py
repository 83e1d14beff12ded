"""`genkit runs [dir] [--json]`: the runs under outputs/ (or dir), newest first, and
`genkit plot <run dir> ... metric=<name> out=<file>`: several runs on one chart.

Neither trains nor builds a model: they read what run directories hold (status.json,
metrics.csv, .hydra/config.yaml), so they answer in a moment and need no Hydra composition.
"""

import json
import os
import sys
import time
from pathlib import Path

from genkit.errors import GenkitError
from genkit.runs.plots import find_runs, plot_runs, read_metrics
from genkit.runs.status import current_status, facts_from_config, read_status, status_unreadable

RUNS_USAGE = "usage: genkit runs [dir] [--json]   (dir: default ./outputs, or $GENKIT_OUTPUT_DIR)"
PLOT_USAGE = "usage: genkit plot <run dir or sweep dir> [...] [metric=<name>] [out=plot.png]"


def _best(values: list[float], mode: str | None) -> float | None:
    if not values:
        return None
    return max(values) if mode == "max" else min(values)


def describe(run_dir: Path) -> dict:
    """One row of `genkit runs`: what the run is, how far it got and how it is doing."""
    # a status.json cut short or missing: the run's name, family and data from its own config
    record = read_status(run_dir) or facts_from_config(run_dir)
    series = read_metrics(run_dir)
    steps = [s for points in series.values() for s, _ in points]
    monitor = record.get("monitor") or ("val/loss" if "val/loss" in series else None)
    values = [v for _, v in series.get(monitor, [])] if monitor else []
    started, ended = record.get("started"), record.get("ended") or record.get("updated")
    status = current_status(record)
    if status_unreadable(run_dir):
        status = "unknown (status.json is unreadable)"
    elif status == "unknown" and (run_dir / "checkpoints" / "last.ckpt").is_file():
        status = "unknown (no status.json)"
    return {
        "run": record.get("run_name") or run_dir.parent.name,
        "family": record.get("family"),
        "data": record.get("data"),
        "steps": record.get("step") if record.get("step") is not None else (max(steps) if steps else 0),
        "status": status,
        "reason": record.get("reason"),
        "monitor": monitor,
        "best": _best(values, record.get("mode")),
        "last": values[-1] if values else None,
        "wall_s": round((time.time() if status == "running" else ended) - started, 1) if started and ended else None,
        "path": str(run_dir),
        "modified": os.path.getmtime(run_dir / "metrics.csv")
        if (run_dir / "metrics.csv").is_file()
        else os.path.getmtime(run_dir),
    }


def _run_dirs(root: Path) -> list[Path]:
    marks = ("status.json", "metrics.csv")
    return sorted({p.parent for mark in marks for p in root.rglob(mark) if ".hydra" not in p.parts})


def list_runs(args: list[str]) -> list[dict]:
    as_json = "--json" in args
    rest = [a for a in args if a != "--json"]
    if len(rest) > 1 or any(a.startswith("-") for a in rest):
        raise GenkitError(f"genkit runs takes one folder and --json, not {' '.join(rest)}. {RUNS_USAGE}")
    root = Path(rest[0] if rest else os.environ.get("GENKIT_OUTPUT_DIR") or "outputs").expanduser()
    if not root.is_dir():
        raise GenkitError(f"{root} is not a folder of runs; train one first (`genkit train`), or name the folder. "
                          f"{RUNS_USAGE}")  # fmt: skip
    rows = sorted((describe(d) for d in _run_dirs(root)), key=lambda r: r["modified"], reverse=True)
    if as_json:
        print(json.dumps(rows, indent=1))
        return rows
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"runs under {root} (newest first)")
    for column in ("run", "family", "data", "steps", "status", "monitored", "best", "last", "wall"):
        table.add_column(column, no_wrap=column != "status")
    table.add_column(f"path (under {root})", overflow="fold")
    colours = {"finished": "green", "running": "cyan", "stopped": "yellow", "failed": "red", "dead": "red"}
    for r in rows:
        number = lambda v: "" if v is None else f"{v:.4g}"  # noqa: E731
        status = r["status"] + (f" ({r['reason']})" if r["reason"] and r["status"] != "finished" else "")
        table.add_row(
            r["run"], r["family"] or "", r["data"] or "", str(r["steps"]),
            f"[{colours.get(r['status'], 'white')}]{status}[/]", r["monitor"] or "", number(r["best"]),
            number(r["last"]), "" if r["wall_s"] is None else f"{r['wall_s']:.0f} s",
            str(Path(r["path"]).relative_to(root)),
        )  # fmt: skip
    # piped into a file or grep: one row a line rather than folded into 80 columns
    Console(width=None if sys.stdout.isatty() else 240).print(table)
    return rows


def plot_command(args: list[str]) -> Path:
    options = dict(a.split("=", 1) for a in args if "=" in a)
    unknown = sorted(set(options) - {"metric", "out"})
    if unknown:
        raise GenkitError(f"genkit plot has no option {unknown[0]!r}; it takes metric= and out=. {PLOT_USAGE}")
    paths = [Path(a) for a in args if "=" not in a]
    if not paths:
        raise GenkitError(f"genkit plot needs at least one run directory (or a folder of runs). {PLOT_USAGE}")
    runs = find_runs(paths)
    if not runs:
        raise GenkitError(f"No run directories (with a metrics.csv) under {', '.join(map(str, paths))}. {PLOT_USAGE}")
    metric = options.get("metric") or ranking_metric(runs)
    out = plot_runs(runs, metric, Path(options.get("out", "plot.png")))
    print(f"{out}: {metric} of {len(runs)} runs")
    return out


def ranking_metric(runs: list[Path]) -> str:
    """The metric the runs rank their checkpoints by (status.json's `monitor`: val/loss for a
    language model, fid_clf for a GAN with its classifier), when they agree. Runs that recorded
    none (a GAN scored without a classifier) get the first loss all of them logged, validation's
    before training's."""
    monitors = {(read_status(run) or {}).get("monitor") for run in runs}
    named = monitors - {None}
    if len(named) > 1 or (named and None in monitors):
        shown = sorted(m or "none" for m in monitors)
        raise GenkitError(
            f"These runs rank by different metrics ({', '.join(shown)}); name the one to plot with "
            f"metric=<name>. {PLOT_USAGE}"
        )
    if named:
        return named.pop()
    logged = set.intersection(*(set(read_metrics(run)) for run in runs))
    losses = sorted(m for m in logged if m.endswith("loss"))
    preferred = ["val/loss", "train/loss", *(m for m in losses if m.startswith("val/")), *losses]
    return next((m for m in preferred if m in logged), "val/loss")
