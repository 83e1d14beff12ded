"""Writing a command's results: a JSON file for scripts and a table for people."""

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def write_report(results: dict, out: Path, title: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    table = Table(title=f"{title} -> {out}", show_header=False)
    for key, value in results.items():
        # nested reports (a classification report per label) are for eval.json, too long for a cell
        if key != "before" and not (isinstance(value, dict) and any(isinstance(v, dict) for v in value.values())):
            table.add_row(key, _cell(value))
    Console().print(table)
    if isinstance(results.get("before"), dict):
        Console().print(before_after_table(results))


def before_after_table(results: dict) -> Table:
    """A fine-tuned model's scores beside those of the model it started from."""
    before = results["before"]
    table = Table(title=f"before (model.init_from={before.get('init_from')}) and after fine-tuning")
    for column in ("metric", "before", "after"):
        table.add_column(column)
    for key, after in results.items():
        if isinstance(after, int | float) and not isinstance(after, bool) and key in before and key != "seconds":
            table.add_row(key, _cell(before[key]), _cell(after))
    if "note" in before:
        table.caption = before["note"]
    return table
