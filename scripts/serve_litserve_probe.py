"""The same text model and batched decoding as `genkit serve`, behind LitServe instead of FastAPI +
uvicorn: the measurement that chose genkit serve's library (docs/serve.md). Not part of genkit.

    python scripts/serve_litserve_probe.py <run or .ckpt> [port]      # then, in another shell:
    python scripts/serve_load.py --url http://127.0.0.1:<port>/

LitServe batches itself (max_batch_size 16, batch_timeout 10 ms, as genkit serve's defaults) and
runs the model in a worker process; predict() calls genkit's batched decoding
(genkit.serving.text_runner.run_to_end: the batch's requests join at once), so only the HTTP layer
and the batching differ.
"""

import sys

import litserve as ls

from genkit.serving.text import completion_body, completion_fields, read_completion
from genkit.serving.text_runner import run_to_end
from genkit.training.restore import load_model

LIMITS = {"max_n": 16, "max_tokens": 256, "max_steps": 200}


class _Job:
    def __init__(self, payload):
        self.payload, self.rows, self.result, self.error = payload, payload.n, None, None

    def emit(self, piece):
        pass

    def finish(self, value):
        self.result = value

    def fail(self, error):
        self.error = error


class CompletionsAPI(ls.LitAPI):
    def setup(self, device):
        self.model, self.data, cfg = load_model(sys.argv[1])
        self.model_id = str(cfg.get("run_name"))
        self.fields = completion_fields(self.model, self.data, LIMITS)

    def decode_request(self, request):
        return read_completion(request, self.fields, self.model, self.data)

    def predict(self, requests):
        jobs = [_Job(r) for r in requests]
        run_to_end(self.model, self.data, jobs)
        return [(job.payload, job.result) for job in jobs]

    def encode_response(self, output):
        request, choices = output
        return completion_body(request, choices, self.model_id)


if __name__ == "__main__":
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 8010
    api = CompletionsAPI(max_batch_size=16, batch_timeout=0.01, api_path="/v1/completions")
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1)

    @server.app.get("/v1/models")
    def models() -> dict:  # what scripts/serve_load.py reads to pick its requests
        return {"data": [{"id": "litserve-probe", "family": "GPT", "modality": "text", "endpoint": "/v1/completions"}]}

    print(f"litserve probe on http://127.0.0.1:{port}/", flush=True)
    server.run(host="127.0.0.1", port=port, generate_client_file=False, log_level="warning")
