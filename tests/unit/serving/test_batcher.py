"""The batchers: the window batcher's count of waiting requests (GET /health `queued`: a request
in the batching window is waiting, though the queue itself is empty then), and continuous
batching's row limit and stop."""

import asyncio
import threading

from genkit.serving.batcher import Batcher
from genkit.serving.continuous import ContinuousBatcher


def test_a_request_in_the_batching_window_counts_as_queued():
    async def scenario() -> list:
        ran: list[int] = []

        def run(jobs) -> None:
            ran.append(len(jobs))
            for job in jobs:
                job.finish("done")

        # a window far longer than the test: only stop() ends it, so nothing here depends on timing
        batcher = Batcher(run, 16, 600.0)
        batcher.start()
        job = batcher.submit("payload", 1)
        assert batcher.waiting == 1
        for _ in range(100):  # let the batcher take it from the queue into its window
            if batcher.queue.empty():
                break
            await asyncio.sleep(0)
        assert batcher.queue.empty() and batcher.waiting == 1 and not batcher.busy
        await batcher.stop()  # runs what it holds, then stops
        return [await job.result, batcher.waiting, ran]

    assert asyncio.run(scenario()) == ["done", 0, [1]]


class CountingRunner:
    """Stands in for TextRunner: a job of n rows runs `payload` steps, then is answered."""

    def __init__(self, gate: threading.Event):
        self.gate, self.left, self.joined = gate, {}, []

    @property
    def rows(self) -> int:
        return sum(job.rows for job in self.left)

    can_join = True

    def step(self, joining) -> int:
        self.gate.wait()  # the test holds the model thread here until every job is submitted
        self.joined.append(sorted(job.payload for job in joining))
        self.left.update({job: job.payload for job in joining})
        for job in list(self.left):
            self.left[job] -= 1
            if self.left[job] == 0:
                job.finish(job.payload)
                del self.left[job]
        return self.rows


def test_continuous_batching_lets_requests_in_as_rows_free_up():
    """max_rows=3: jobs of 2 rows each; the second waits for the first to leave, and stop()
    answers every job submitted before it."""

    async def scenario() -> list:
        gate = threading.Event()
        runner = CountingRunner(gate)
        batcher = ContinuousBatcher(runner, max_rows=3)
        batcher.start()
        jobs = [batcher.submit(steps, 2) for steps in (3, 1, 2)]
        gate.set()
        await batcher.stop()
        return [await job.result for job in jobs] + [batcher.waiting, runner.rows, [j for j in runner.joined if j]]

    *answers, waiting, rows, joined = asyncio.run(scenario())
    assert answers == [3, 1, 2] and waiting == 0 and rows == 0
    assert all(len(j) == 1 for j in joined)  # never two jobs of 2 rows in a batch of 3
