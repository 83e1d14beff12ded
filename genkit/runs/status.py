"""<run_dir>/status.json: what a run is doing or how it ended, for `genkit runs`.

train() writes it when it starts (running, with its process and host), and again when it ends:
finished, stopped (by a signal, after saving), or failed (with the first line of the error, e.g.
a NaN loss). A run still marked running whose process is gone was killed without a chance to say
so (SIGKILL, power loss): `genkit runs` calls it dead.
"""

import json
import os
import socket
import time
from pathlib import Path

import yaml

from genkit.atomic import write_text

STATUS_FILE = "status.json"


def write_status(run_dir: Path, status: str, **fields) -> None:
    path = Path(run_dir) / STATUS_FILE
    record = read_status(run_dir) or {}
    record.update(fields, status=status, updated=time.time())
    if status == "running":
        record.update(pid=os.getpid(), host=socket.gethostname(), started=record.get("started") or time.time())
        record.pop("reason", None)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(record, indent=1) + "\n")


def read_status(run_dir: Path) -> dict | None:
    try:
        return json.loads((Path(run_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None


def current_status(record: dict | None) -> str:
    """The status to show: a running record whose process no longer exists on this host is dead."""
    if not record:
        return "unknown"
    status = record.get("status", "unknown")
    if status == "running" and record.get("host") == socket.gethostname():
        try:
            os.kill(int(record["pid"]), 0)
        except ProcessLookupError:
            return "dead"
        except (PermissionError, KeyError, ValueError, TypeError):
            pass
    return status


def status_unreadable(run_dir: Path) -> bool:
    """status.json is there but cannot be read (cut short by a full disk, edited by hand)."""
    return (Path(run_dir) / STATUS_FILE).exists() and read_status(run_dir) is None


def facts_from_config(run_dir: Path) -> dict:
    """What status.json would say of a run (its name, family, data), read from the config Hydra
    wrote into the run directory, for a run whose status.json is missing or unreadable. Read as
    plain YAML: nothing in it is resolved or built."""
    try:
        cfg = yaml.safe_load((Path(run_dir) / ".hydra" / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return {}
    if not isinstance(cfg, dict):
        return {}
    model, data = cfg.get("model") or {}, cfg.get("data") or {}
    target = model.get("_target_") if isinstance(model, dict) else None
    run_name = cfg.get("run_name")
    return {
        "run_name": run_name if isinstance(run_name, str) and "${" not in run_name else None,
        "family": target.rsplit(".", 1)[-1] if isinstance(target, str) else None,
        "data": data.get("name") if isinstance(data, dict) else None,
    }
