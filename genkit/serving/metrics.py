"""GET /metrics of `genkit serve`: Prometheus's text format, which vLLM, TGI and llama.cpp's
server expose too, written by prometheus-client into a registry of this app's own (two apps in
one process, as in the tests, count apart).

Requests are counted by route and status, their time to the answer's start (a streamed answer
starts at its first event) in a histogram by route; text servers count prompt and generated
tokens and the rows generated together at each token step (the batch size of continuous
batching); the queue and whether the model runs are read when the metrics are asked for. Paths
that are no route are counted as `other`, so a scanner's requests cannot grow the set of series.
"""

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# seconds: a page or /health answers in milliseconds, a completion of a few hundred tokens on a CPU in seconds
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class ServeMetrics:
    def __init__(self, routes: set[str]):
        self.routes = routes
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "genkit_requests", "HTTP requests answered, by route and status code", ["route", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.seconds = Histogram(
            "genkit_request_seconds", "Time from a request's arrival to its answer's start, by route", ["route"],
            buckets=BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.queued = Gauge("genkit_queued_requests", "Requests waiting for a batch", registry=self.registry)
        self.prompt_tokens = Counter("genkit_prompt_tokens", "Prompt tokens read (the start token included)",
                                     registry=self.registry)  # fmt: skip
        self.completion_tokens = Counter("genkit_completion_tokens", "Tokens generated in answers",
                                         registry=self.registry)  # fmt: skip
        self.batch_rows = Histogram(
            "genkit_batch_rows", "Rows (completions) generated together, observed at every token step",
            buckets=ROW_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.busy = Gauge("genkit_batch_running", "1 while the model generates a batch, else 0", registry=self.registry)

    def observe(self, path: str, status: int, seconds: float) -> None:
        route = path if path in self.routes else "other"
        self.requests.labels(route, str(status)).inc()
        self.seconds.labels(route).observe(seconds)

    def answered(self, request, choices) -> None:
        """A text request answered (from the model's thread; prometheus-client's metrics are thread-safe)."""
        self.prompt_tokens.inc(len(request.prompt_ids))
        self.completion_tokens.inc(sum(len(c.ids) for c in choices))

    def render(self, queued: int, busy: bool) -> tuple[bytes, str]:
        self.queued.set(queued)
        self.busy.set(1 if busy else 0)
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
