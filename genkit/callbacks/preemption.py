"""Saves a checkpoint when SLURM warns of a time limit or preemption, then lets the job be requeued.

SLURM sends SIGUSR1 (sbatch --signal=USR1@T, Lightning's auto-requeue) or SIGUSR2 (submitit's
launcher) some time before it kills a job. Whoever handled the signal before genkit (Lightning's
handler, which writes hpc_ckpt_N.ckpt and runs `scontrol requeue`, or submitit's, which
resubmits the job) still runs, but only after the current batch has finished and last.ckpt has
been written at that clean boundary. The requeued job resumes from its run directory.
SIGTERM is handled by Lightning itself: it stops at the end of the batch, and genkit's
RunCheckpoint saves last.ckpt on the way out. Ctrl-C (SIGINT) is made to do the same: the first
one stops after the current batch (saved, counted, never half-applied); a second one interrupts
at once.
"""

import logging
import signal
import threading

import lightning as L

from genkit.callbacks.checkpoint import RunCheckpoint

log = logging.getLogger("genkit")

SIGNALS = ("SIGUSR1", "SIGUSR2")


class SaveOnPreemption(L.Callback):
    def __init__(self, signals: tuple[str, ...] = SIGNALS):
        self.signals = [getattr(signal, name) for name in signals]
        self.pending: tuple | None = None
        self.interrupted = False
        self.previous: dict = {}

    def _handler(self, signum, frame) -> None:
        log.info("Received %s: saving a checkpoint after this batch", signal.Signals(signum).name)
        self.pending = (signum, frame)

    def _interrupt(self, signum, frame) -> None:
        if self.interrupted:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        log.info("Ctrl-C: stopping after this batch (press it again to stop at once)")
        self.interrupted = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for signum in self.signals:
            self.previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._handler)
        if threading.current_thread() is threading.main_thread():
            self.previous[signal.SIGINT] = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._interrupt)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.interrupted:
            checkpoint = trainer.checkpoint_callback
            if isinstance(checkpoint, RunCheckpoint):
                checkpoint.save_last_now(trainer)
            raise KeyboardInterrupt  # Lightning's own shutdown; genkit's train() reports it
        signalled = self.pending is not None
        if trainer.world_size > 1:  # every rank must save at the same step, or the save would hang
            signalled = trainer.strategy.reduce_boolean_decision(signalled, all=False)
        if not signalled:
            return
        signum, frame = self.pending or (signal.SIGUSR1, None)
        self.pending = None
        checkpoint = trainer.checkpoint_callback
        if isinstance(checkpoint, RunCheckpoint):
            checkpoint.save_last_now(trainer)
        previous = self.previous.get(signum)
        if callable(previous):
            previous(signum, frame)  # Lightning's or submitit's requeue
        else:
            trainer.should_stop = True  # nobody requeues: stop cleanly, the run resumes when restarted

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for signum, handler in self.previous.items():
            if handler is not None:
                signal.signal(signum, handler)
        self.previous, self.interrupted = {}, False

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.on_train_end(trainer, pl_module)
