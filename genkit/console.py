"""Progress of long phases outside training (a leaf: it imports nothing of genkit's).

A rich bar on a terminal; elsewhere (CI, SLURM logs, pipes) log lines with the time taken and
an ETA, as training's progress bar shows its steps (genkit.callbacks.progress).
"""

import logging
import sys
import time

log = logging.getLogger("genkit")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def tracked(items, total: int, what: str, lines: int = 10):
    """Yield `items`, showing the progress of a long phase outside training (the classifier of
    genkit eval, generating its samples): a rich bar on a terminal, else the first and then up
    to `lines` log lines with the time taken and an ETA, as training shows its steps."""
    if sys.stdout.isatty():
        from rich.progress import track

        yield from track(items, total=total, description=what, transient=True)
        return
    t0, every = time.perf_counter(), max(1, total // lines)
    for i, item in enumerate(items, 1):
        yield item
        elapsed = time.perf_counter() - t0
        if i == 1:  # the first item carries the warm-up: the ETA is timed from the second on
            log.info("%s 1/%d  %s", what, total, _duration(elapsed))
            t1 = elapsed
        elif i % every == 0 or i == total:
            eta = (elapsed - t1) / (i - 1) * (total - i)
            log.info("%s %d/%d  %s, ETA %s", what, i, total, _duration(elapsed), _duration(eta))
