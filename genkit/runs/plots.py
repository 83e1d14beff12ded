"""Charts of runs from their metrics.csv: `curves.png` at the end of every run, and `genkit plot`
comparing several runs (a sweep) on one metric, each labelled by what differs in its config.

matplotlib with its file-only backend (no display needed on a cluster node).
"""

import csv
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from genkit.errors import GenkitError

CURVES_FILE = "curves.png"
# the metric a family is judged by, first found wins (beside its losses)
MAIN_METRICS = ("val/fid_clf", "val/class_acc", "val/ppl", "val/bpd", "val/nll", "val/elbo")


def read_metrics(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """metrics.csv as {metric: [(step, value), ...]} (empty cells skipped)."""
    path = Path(run_dir) / "metrics.csv"
    series: dict[str, list[tuple[int, float]]] = {}
    if not path.is_file():
        return series
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if not row.get("step"):
                continue
            step = int(float(row["step"]))
            for key, value in row.items():
                if key in ("step", "epoch") or value in ("", None):
                    continue
                try:
                    series.setdefault(key, []).append((step, float(value)))
                except ValueError:
                    continue
    return series


def _smooth(values: Sequence[float], weight: float) -> list[float]:
    """An exponential moving average with the start-up bias removed (as TensorBoard's slider)."""
    out, avg = [], 0.0
    for i, v in enumerate(values, 1):
        avg = weight * avg + (1 - weight) * v
        out.append(avg / (1 - weight**i))
    return out


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _log_scale_fits(values: Iterable[float]) -> bool:
    values = [v for v in values if math.isfinite(v)]
    return bool(values) and min(values) > 0 and max(values) / min(values) > 10


def plot_curves(run_dir: Path, main_metric: str | None = None) -> Path | None:
    """<run_dir>/curves.png: losses (train smoothed over its raw values, val), the main metric, and
    the learning rates against steps. None when the run logged nothing."""
    series = read_metrics(run_dir)
    losses = sorted(k for k in series if k.startswith(("train/", "val/")) and k.endswith("loss"))
    if not losses:
        return None
    main = main_metric if main_metric in series and main_metric not in losses else None
    main = main or next((m for m in MAIN_METRICS if m in series), None)
    rates = sorted(k for k in series if k == "lr" or k.startswith("lr/"))
    panels = [("loss", losses), *([(main, [main])] if main else []), *([("learning rate", rates)] if rates else [])]
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (title, keys) in zip(axes[0], panels, strict=True):
        for key in keys:
            steps, values = zip(*series[key], strict=True)
            if key.startswith("train/") and len(values) > 5:
                (raw,) = ax.plot(steps, values, alpha=0.25, linewidth=0.8)
                ax.plot(steps, _smooth(values, 0.9), color=raw.get_color(), label=f"{key} (smoothed)")
            else:
                ax.plot(steps, values, marker="o" if len(values) < 30 else None, markersize=3, label=key)
        if _log_scale_fits(v for key in keys for _, v in series[key]):
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(Path(run_dir).name, fontsize=9)
    fig.tight_layout()
    out = Path(run_dir) / CURVES_FILE
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def find_runs(paths: Iterable[Path]) -> list[Path]:
    """Run directories (holding metrics.csv) given directly or found below the given folders."""
    runs: list[Path] = []
    for path in paths:
        path = Path(path).expanduser()
        if not path.exists():
            raise GenkitError(f"{path} does not exist; give run directories or a folder of runs (a sweep).")
        found = [path] if (path / "metrics.csv").is_file() else sorted(p.parent for p in path.rglob("metrics.csv"))
        runs += [r for r in found if r not in runs]
    return runs


def _flat(cfg, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = value
    return out


def run_config(run_dir: Path) -> dict[str, object]:
    """A run's composed config (.hydra/config.yaml), flattened to dotted keys; {} if absent."""
    path = Path(run_dir) / ".hydra" / "config.yaml"
    if not path.is_file():
        return {}
    from omegaconf import OmegaConf

    return _flat(OmegaConf.to_container(OmegaConf.load(path), resolve=False))


# keys that differ between any two runs without saying anything about them
_NOT_LABELS = ("paths.", "hydra.", "run_name", "resume")


def run_labels(runs: Sequence[Path]) -> list[str]:
    """A label per run from the config values that differ between them (`lr=0.0001`), with the
    shortest key suffix that stays unambiguous; the directory name when nothing differs."""
    configs = [run_config(r) for r in runs]
    keys = sorted({k for c in configs for k in c})
    differing = [k for k in keys if not k.startswith(_NOT_LABELS) and len({repr(c.get(k)) for c in configs}) > 1]
    labels = []
    for run, config in zip(runs, configs, strict=True):
        parts = []
        for key in differing:
            short = key.rsplit(".", 1)[-1]
            if sum(k.rsplit(".", 1)[-1] == short for k in differing) > 1:
                short = key
            parts.append(f"{short}={config.get(key)}")
        labels.append(" ".join(parts) if parts else Path(run).name)
    return labels


def plot_runs(runs: Sequence[Path], metric: str, out: Path) -> Path:
    """One chart of `metric` against steps for every run."""
    series = [read_metrics(r) for r in runs]
    if not any(metric in s for s in series):
        available = sorted({k for s in series for k in s})
        raise GenkitError(
            f"metric={metric} was not logged by {'these runs' if len(runs) > 1 else 'this run'}; logged: "
            f"{', '.join(available) or 'nothing (no metrics.csv rows)'}."
        )
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    values_seen = []
    for label, s in zip(run_labels(runs), series, strict=True):
        if metric not in s:
            continue
        steps, values = zip(*s[metric], strict=True)
        values_seen += values
        if metric.startswith("train/") and len(values) > 5:
            (raw,) = ax.plot(steps, values, alpha=0.2, linewidth=0.8)
            values = _smooth(values, 0.9)
            ax.plot(steps, values, color=raw.get_color(), label=label)
        else:
            ax.plot(steps, values, marker="o" if len(values) < 30 else None, markersize=3, label=label)
    if _log_scale_fits(values_seen):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out).expanduser()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=100)
    except OSError as err:
        raise GenkitError(f"Could not write the chart to {out} ({err.strerror or err}). Pass out=<file> in a "
                          f"folder you can write to.") from None  # fmt: skip
    finally:
        plt.close(fig)
    return out
