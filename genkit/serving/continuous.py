"""Continuous batching for text: requests join the running batch at the next token and leave as
soon as their completions end, each with its own rows in the network's cache (what vLLM, TGI and
llama.cpp's server do), instead of waiting for a whole batch to finish.

One model thread loops: take the requests that arrived, let in those that fit (at most
`max_rows` rows in the batch; a request's n rows join together), and generate one token for
every row (genkit.serving.text_runner.TextRunner.step). It sleeps only when nothing runs and
nothing waits. The event loop hands requests over through a thread-safe queue and hears back
through each Job (genkit.serving.batcher), so it keeps accepting requests while the model works.
"""

import asyncio
import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from genkit.serving.batcher import Job


class ContinuousBatcher:
    def __init__(self, runner, max_rows: int, context: Callable[[], Any] = contextlib.nullcontext,
                 on_step: Callable[[int], None] = lambda rows: None):  # fmt: skip
        """runner: step(joining jobs) -> rows that drew a token, rows, can_join (TextRunner);
        context: entered by the model thread for its life (autocast); on_step(rows): told the
        batch size of every step."""
        self.runner, self.max_rows, self.context, self.on_step = runner, max_rows, context, on_step
        self.inbox: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self.pending: deque[Job] = deque()  # taken from the inbox, not yet let in (the batch is full)
        self._thread: threading.Thread | None = None

    @property
    def waiting(self) -> int:
        """Requests submitted and not yet in the batch (GET /health `queued`)."""
        return self.inbox.qsize() + len(self.pending)

    @property
    def busy(self) -> bool:
        """Whether rows are being generated (a request's rows leave before it is answered)."""
        return self.runner.rows > 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="genkit-model", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Answer every request already submitted, then stop (the server has stopped taking them)."""
        if self._thread is not None:
            self.inbox.put(None)
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)

    def submit(self, payload: Any, rows: int, stream: bool = False) -> Job:
        job = Job(payload, rows, asyncio.get_running_loop(), stream)
        self.inbox.put(job)
        return job

    def _take(self, block: bool) -> bool:
        """Move arrived jobs to `pending` (waiting for one when `block`); False once told to stop."""
        going = True
        try:
            job = self.inbox.get(block=block)
            while True:
                if job is None:
                    going = False
                else:
                    self.pending.append(job)
                job = self.inbox.get_nowait()
        except queue.Empty:
            pass
        return going

    def _joining(self) -> list[Job]:
        """The waiting jobs that fit in the batch now, first come first in."""
        joining, rows = [], self.runner.rows
        while self.pending:
            job = self.pending[0]
            if job.result.done():  # answered already (it failed while waiting)
                self.pending.popleft()
                continue
            fits = rows + job.rows <= self.max_rows and (self.runner.can_join or rows == 0)
            if not fits and rows > 0:  # the first of a request bigger than max_rows runs alone
                break
            joining.append(self.pending.popleft())
            rows += job.rows
        return joining

    def _serve(self) -> None:
        going = True
        with self.context():
            while True:
                idle = not self.runner.rows and not self.pending
                if idle and not going:
                    break
                going = self._take(block=idle and going) and going
                joining = self._joining()
                if not joining and not self.runner.rows:
                    continue
                rows = self.runner.step(joining)
                self.on_step(rows)
                time.sleep(0)  # hand the GIL to the event loop: answers go out, new requests come in
