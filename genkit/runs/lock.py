"""One writer per run directory: <run_dir>/.genkit.lock.

Two `genkit train` processes in one run directory overwrite each other's last.ckpt and interleave
metrics.csv, so the one that trains holds this lock and a second one is refused (or waits, with
`wait=true`). The lock file records who holds it (host, pid, start time, the SLURM job); the holder
touches it every HEARTBEAT_S seconds.

A lock whose holder is gone is stale and taken over, with one line saying so:
- same host: its process no longer exists (kill -9, a crash);
- the same SLURM job (a requeued job keeps its id): the earlier run of this very job;
- another host: its heartbeat (the file's mtime) is older than STALE_AFTER_S (a lost node). A
  holder on another host that is alive touches the file well within that time, so a run on a
  shared file system is not taken over while it trains.

Only the process that starts the run holds the lock: the extra DDP ranks that Lightning (or srun,
or torchrun) starts run with a nonzero rank in their environment and take no lock, so ranks of one
run never lock each other out.
"""

import contextlib
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path

from filelock import FileLock

from genkit.atomic import write_text
from genkit.errors import GenkitError

log = logging.getLogger("genkit")

LOCK_FILE = ".genkit.lock"
# held for the moment of checking and taking LOCK_FILE (never removed: see release)
GUARD_FILE = ".genkit.lock.guard"
HEARTBEAT_S = 30.0
# 10 heartbeats: a holder on another host whose file has not been touched for this long is gone
STALE_AFTER_S = 300.0
# how often a waiting run (wait=true) looks again
WAIT_POLL_S = 2.0


class RunDirectoryBusy(GenkitError):
    """Another live process trains in this run directory."""


def holds_lock() -> bool:
    """Whether this process is the one that holds a run's lock: not an extra DDP rank."""
    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK"):
        if os.environ.get(key, "0") not in ("", "0"):
            return False
    # srun starts every task of a multi-task job itself; its task 0 holds the lock
    return os.environ.get("SLURM_PROCID", "0") == "0" or os.environ.get("SLURM_NTASKS", "1") == "1"


def _record() -> dict:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": time.time(),
        "slurm_job": os.environ.get("SLURM_JOB_ID"),
    }


def read_lock(run_dir: Path) -> dict | None:
    """The lock's record, or None when there is no lock. An unreadable lock file (a write cut
    short) counts as held by an unknown process, which its mtime ages out like any other."""
    path = Path(run_dir) / LOCK_FILE
    try:
        text = path.read_text()
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    except OSError:
        return {"host": "?", "pid": None, "heartbeat": time.time()}
    try:
        record = json.loads(text)
        if not isinstance(record, dict):
            raise ValueError
    except ValueError:
        record = {"host": "?", "pid": None}
    record["heartbeat"] = mtime
    return record


def stale_reason(record: dict) -> str | None:
    """Why the holder of this lock is gone, or None when it may still be running."""
    host, pid = record.get("host"), record.get("pid")
    job = os.environ.get("SLURM_JOB_ID")
    if job and record.get("slurm_job") == job:
        return f"it was held by an earlier run of this SLURM job ({job}, requeued)"
    if host == socket.gethostname() and isinstance(pid, int):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return f"its process {pid} on this host no longer exists"
        except PermissionError:  # another user's live process
            return None
        if pid == os.getpid():
            return "it was held by this process"
        return None
    age = time.time() - record.get("heartbeat", 0)
    if age > STALE_AFTER_S:
        return f"its holder on {host} has not touched it for {age:.0f} s (more than {STALE_AFTER_S:.0f} s)"
    return None


def describe(record: dict) -> str:
    started = record.get("started")
    when = (
        time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, int | float) else ""
    )
    job = f", SLURM job {record['slurm_job']}" if record.get("slurm_job") else ""
    return f"process {record.get('pid')} on {record.get('host')}{when}{job}"


def busy_error(run_dir: Path, record: dict) -> RunDirectoryBusy:
    return RunDirectoryBusy(
        f"The run directory {run_dir} is in use: {describe(record)} is training in it, and two trainings in "
        f"one directory would overwrite each other's checkpoints. Wait for it to end (or stop it), pass wait=true "
        f"to start when it ends, or train in another directory (leave out hydra.run.dir). If that process is "
        f"gone on another machine, its lock ({run_dir / LOCK_FILE}) is taken over {STALE_AFTER_S:.0f} s after its "
        f"last heartbeat."
    )


def check_free(run_dir: Path) -> None:
    """Refuse early (before Hydra writes its config into the folder) when a live run holds it."""
    record = read_lock(run_dir)
    if record is not None and stale_reason(record) is None:
        raise busy_error(Path(run_dir), record)


class RunLock:
    """The lock of one run directory, held from acquire() to release(), its heartbeat refreshed
    by a daemon thread."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.held = False

    def _try_take(self) -> dict | None:
        """Take the lock if it is free or stale; else return the live holder's record."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # the check-and-take is one step for every process on this host (and on file systems
        # where flock reaches other hosts): two runs that both find a stale lock cannot both take it
        with FileLock(str(self.run_dir / GUARD_FILE), timeout=60):
            record = read_lock(self.run_dir)
            if record is not None:
                reason = stale_reason(record)
                if reason is None:
                    return record
                log.warning("Taking over the stale lock of %s: %s.", self.run_dir, reason)
            write_text(self.path, json.dumps(_record()) + "\n")
        return None

    def acquire(self, wait: bool = False) -> None:
        announced = False
        while True:
            holder = self._try_take()
            if holder is None:
                break
            if not wait:
                raise busy_error(self.run_dir, holder)
            if not announced:
                log.info("Waiting for %s to end: it trains in %s (wait=true).", describe(holder), self.run_dir)
                announced = True
            time.sleep(WAIT_POLL_S)
        self.held = True
        self._thread = threading.Thread(target=self._beat, name="genkit-run-lock", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        self._stop.set()
        if not self.held:
            return
        self.held = False
        record = read_lock(self.run_dir)
        # only our own lock: a run that lost it (its file deleted by hand) must not remove another's
        if record is not None and record.get("pid") == os.getpid() and record.get("host") == socket.gethostname():
            with contextlib.suppress(OSError):
                self.path.unlink()
        # GUARD stays: unlinking a file that another process waits to flock would let a third
        # lock a new file of the same name, and both would be inside

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def lock_run_directory(run_dir: str | Path, wait: object = False) -> RunLock:
    """The lock of a run directory, taken (or waited for, wait=true) by the process that starts the
    run; extra DDP ranks get an unheld lock whose release does nothing."""
    if not isinstance(wait, bool):
        raise GenkitError(f"wait={wait!r} must be true or false (true: start when the run in the directory ends).")
    lock = RunLock(run_dir)
    if holds_lock():
        lock.acquire(wait=wait)
    return lock
