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
        table.add_row(key, _cell(value))
    Console().print(table)
