"""A training run that a test holds at a step, so that what the test does beside it (a second run,
a signal) happens while it trains, however slow the machine: never a sleep that hopes so."""

import time
from pathlib import Path

import lightning as L


class HoldAt(L.Callback):
    """At the end of the batch that reaches global step `step`, touch the file `held`, then wait
    until the file `release` exists (the test creates it). Genkit's RunCheckpoint runs after this
    callback, so the step's checkpoints are written once the run is released."""

    def __init__(self, step: int, held: str, release: str):
        self.step, self.held, self.release = step, Path(held), Path(release)
        self.done = False

    def on_train_batch_end(self, trainer: L.Trainer, *args, **kwargs) -> None:
        if self.done or trainer.global_step < self.step:
            return
        self.done = True
        self.held.touch()
        while not self.release.exists():
            time.sleep(0.05)  # polls a file the test controls: how long it takes changes nothing


def hold_at(step: int, folder: Path) -> tuple[str, Path, Path]:
    """The override that holds a run at `step`, and its `held` and `release` files in `folder`."""
    held, release = folder / f"held_at_{step}", folder / f"release_{step}"
    target = f"{__name__}.HoldAt"
    return f"+callbacks.hold={{_target_: {target}, step: {step}, held: {held}, release: {release}}}", held, release
