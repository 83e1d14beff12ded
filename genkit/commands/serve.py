"""`genkit serve`: a trained model behind an HTTP API (genkit/serving), with a page to try it.

The checkpoint opens with genkit's trust rules (genkit.training.restore.load_model), once; the
serving layer gets the model and its data module and knows nothing of checkpoints.
"""

import logging
import os

import torch
from omegaconf import DictConfig

from genkit.checkpoints.files import resolve_checkpoint
from genkit.commands.command_options import CHECKPOINT_OPTIONS, INFERENCE_OPTIONS, check_options
from genkit.errors import GenkitError
from genkit.options import TEXT, Option, Rule, number, whole_number
from genkit.runtime import device_for, inference_precision
from genkit.serving.app import Settings, build_app
from genkit.serving.server import bind, is_loopback, run
from genkit.training.restore import load_model

log = logging.getLogger("genkit")

OPTIONS = {
    **CHECKPOINT_OPTIONS,
    **INFERENCE_OPTIONS,
    "host": Option("127.0.0.1", "the address to listen on (beyond loopback only with api_key)", TEXT),
    "port": Option(8000, "the port (0: a free one, printed when ready)",
                   Rule(lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 65535,
                        "a whole number from 0 to 65535")),
    "api_key": Option(None, "the key every request must carry (else $GENKIT_API_KEY); needed beyond loopback",
                      TEXT, shown="api_key=<key>"),
    "max_n": Option(16, "most completions or images one request may ask for", whole_number(1)),
    "max_tokens": Option(256, "most tokens one completion may ask for", whole_number(1)),
    "max_steps": Option(200, "most sampler steps one image request may ask for", whole_number(1)),
    "max_body_bytes": Option(65536, "largest request body", whole_number(1)),
    "timeout": Option(60, "seconds a request may take before it is answered 408",
                      number(lambda v: v > 0, "a number of seconds above 0")),
    # 16 rows: the load script's 16 clients fill one batch (docs/serve.md has the measurements)
    "max_batch": Option(16, "most rows (completions or images) generated together across requests (1: none "
                        "batched)", whole_number(1)),
    "batch_window_ms": Option(10, "images: how long a request waits for others to share its sampler's steps "
                              "(text requests join the running batch at the next token)",
                              number(lambda v: v >= 0, "a number of milliseconds of at least 0")),
    "threads": Option(0, "the model's CPU threads (0: all cores but one, which the HTTP side keeps)",
                      whole_number(0)),
}  # fmt: skip


def model_threads(asked: int, cores: int) -> int:
    """threads=0: every core but one. The model thread and the HTTP event loop share the GIL and
    the cores; with the model's OpenMP threads on every core, each step waits for a thread the
    event loop displaced (on 2 cores, 116 against 164 steps a second at 16 clients: docs/serve.md)."""
    return asked or max(cores - 1, 1)


def serve(cfg: DictConfig) -> None:
    check_options("serve", cfg, OPTIONS)
    api_key = cfg.api_key or os.environ.get("GENKIT_API_KEY") or None
    if not is_loopback(cfg.host) and api_key is None:
        raise GenkitError(
            f"host={cfg.host} lets other machines reach the model, so genkit serve needs an API key that every "
            f"request must carry: pass api_key=<key> or set GENKIT_API_KEY, or keep host=127.0.0.1."
        )
    sock = bind(cfg.host, cfg.port)
    path = resolve_checkpoint(cfg.ckpt, cfg.paths.log_dir, cfg.which)
    log.info("Serving %s", path)
    model, datamodule, run_cfg = load_model(path, trusted_targets=cfg.trusted_targets, data_root=cfg.data_root)
    device = device_for("auto")
    model.to(device)
    if device.type == "cpu":
        threads = model_threads(cfg.threads, os.cpu_count() or 1)
        torch.set_num_threads(threads)
        log.info("The model computes on %d CPU thread%s (threads=%d)", threads, "s" * (threads != 1), cfg.threads)
    precision, why = inference_precision(device, cfg.precision)
    log.info("Precision %s %s", precision, why)
    torch.set_grad_enabled(False)
    host, port = sock.getsockname()[:2]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
    model_id = str(run_cfg.get("run_name") or path.stem)
    endpoint = "/v1/completions" if datamodule.modality == "text" else "/v1/images"
    settings = Settings(
        model_id=model_id,
        limits={"max_n": cfg.max_n, "max_tokens": cfg.max_tokens, "max_steps": cfg.max_steps},
        max_body_bytes=cfg.max_body_bytes,
        timeout_s=float(cfg.timeout),
        max_batch=cfg.max_batch,
        window_s=cfg.batch_window_ms / 1000,
        api_key=api_key,
        precision=precision,
        on_ready=lambda: log.info(
            "genkit serve: %s on %s (POST %s; the page at /). Ctrl-C stops.", model_id, url, endpoint
        ),  # fmt: skip
    )
    run(build_app(model, datamodule, settings), sock, grace_s=cfg.timeout)
    log.info("genkit serve: stopped")
