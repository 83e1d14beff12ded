"""Requests that arrive together share one forward pass: a queue, a short window, a largest batch.

The model runs on one worker thread, so the event loop keeps accepting requests while it
computes. A batch starts when the first waiting request has waited `window_s` (10 ms by
default: a tenth of one 32-token completion of the Tiny Shakespeare GPT on 2 cores) or when
`max_rows` rows (samples, not requests) are waiting; requests that queued during a batch start
the next one at once. Each job reports to its own request, as soon as its rows are done
(`finish`), token by token when streamed (`emit`).
"""

import asyncio
import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class Job:
    """One request's work: what the batch runner reads (`payload`, `rows`) and how it answers."""

    def __init__(self, payload: Any, rows: int, loop: asyncio.AbstractEventLoop, stream: bool = False):
        self.payload, self.rows, self._loop = payload, rows, loop
        self.result: asyncio.Future = loop.create_future()
        # streamed pieces, in order; None ends the stream
        self.pieces: asyncio.Queue | None = asyncio.Queue() if stream else None

    # called from the worker thread: each hands the value to the event loop
    def emit(self, piece: Any) -> None:
        if self.pieces is not None:
            self._loop.call_soon_threadsafe(self.pieces.put_nowait, piece)

    def finish(self, value: Any) -> None:
        self._loop.call_soon_threadsafe(self._settle, value, None)

    def fail(self, error: BaseException) -> None:
        self._loop.call_soon_threadsafe(self._settle, None, error)

    def _settle(self, value: Any, error: BaseException | None) -> None:
        if self.result.done():
            return
        if error is None:
            self.result.set_result(value)
        else:
            self.result.set_exception(error)
        if self.pieces is not None:
            self.pieces.put_nowait(None)


class Batcher:
    """Collects jobs into batches for `run(jobs)`, which answers each job (finish or fail)."""

    def __init__(self, run: Callable[[list[Job]], None], max_rows: int, window_s: float):
        self.run, self.max_rows, self.window_s = run, max_rows, window_s
        self.queue: asyncio.Queue[Job | None] = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="genkit-model")
        self.batches = itertools.count()  # batches run so far (for /health)
        self.busy = False
        # requests submitted and not yet handed to the model: in the queue or in a batching window
        # (for /health; the queue alone is empty while a window collects)
        self.waiting = 0
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._serve())

    async def stop(self) -> None:
        """Finish the jobs already queued, then stop (the server has stopped taking requests)."""
        if self._task is not None:
            await self.queue.put(None)
            await self._task
        self.executor.shutdown(wait=True)

    def submit(self, payload: Any, rows: int, stream: bool = False) -> Job:
        job = Job(payload, rows, asyncio.get_running_loop(), stream)
        self.queue.put_nowait(job)
        self.waiting += 1
        return job

    async def _collect(self, first: Job) -> tuple[list[Job], bool]:
        """The first job and those that join it within the window; True when told to stop."""
        jobs, rows = [first], first.rows
        deadline = asyncio.get_running_loop().time() + self.window_s
        while rows < self.max_rows:
            try:
                job = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self.queue.get(), left)
                except TimeoutError:
                    break
            if job is None:
                return jobs, True
            jobs.append(job)
            rows += job.rows
        return jobs, False

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            first = await self.queue.get()
            if first is None:
                break
            jobs, stopping = await self._collect(first)
            self.waiting -= len(jobs)
            jobs = [job for job in jobs if not job.result.done()]  # a client that gave up
            if not jobs:
                continue
            self.busy = True
            next(self.batches)
            try:
                await loop.run_in_executor(self.executor, self.run, jobs)
            except Exception as err:  # a bug in the runner fails this batch's requests, not the server
                for job in jobs:
                    job.fail(err)
            finally:
                self.busy = False
            await asyncio.sleep(0)  # let the answers settle before the next batch
            for job in jobs:  # a runner must answer every job; say so rather than hang
                if not job.result.done():
                    job.fail(RuntimeError("the batch ended without an answer for this request"))
        while not self.queue.empty():  # stop() puts None last: nothing real remains
            self.queue.get_nowait()
