"""The batcher's count of waiting requests (GET /health `queued`): a request in the batching
window is waiting, though the queue itself is empty then."""

import asyncio

from genkit.serving.batcher import Batcher


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
