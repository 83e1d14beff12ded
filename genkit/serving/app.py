"""The HTTP app of `genkit serve` (FastAPI on uvicorn): one loaded model behind OpenAI's
completions and chat completions (text) or /v1/images (images), /health, /v1/models,
Prometheus's /metrics (genkit.serving.metrics) and the page at /.

Every refusal is a 4xx JSON error in OpenAI's shape that names the field (`param`) and the
limit, text that is not Unicode (a lone surrogate of JSON's \\ud800 escapes) included; a fault
of the server's is a 500 in the same shape; a request that fails never stops the server. With an
API key, every request but the page itself (static HTML holding nothing of the model) must carry
it, as `Authorization: Bearer <key>` (what OpenAI's clients send) or `X-API-Key: <key>`.
"""

import asyncio
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from genkit.data.base import GenkitDataModule
from genkit.errors import GenkitError
from genkit.models.base import GenerativeModel
from genkit.runtime import inference_autocast
from genkit.serving.batcher import Batcher, Job
from genkit.serving.chat import ChatChunks, chat_body, chat_fields, read_chat
from genkit.serving.continuous import ContinuousBatcher
from genkit.serving.fields import RequestError, check_text
from genkit.serving.images import image_fields, images_body, read_images_request, run_image_batch
from genkit.serving.metrics import ServeMetrics
from genkit.serving.text import (
    chunk_body,
    completion_body,
    completion_fields,
    read_completions,
    response_header,
)
from genkit.serving.text_runner import TextRunner

log = logging.getLogger("genkit")


@dataclass
class Settings:
    """What `genkit serve` was told: the limits (max_n, max_tokens, max_steps), batching, the key."""

    model_id: str
    limits: dict[str, int]
    max_body_bytes: int = 65536
    timeout_s: float = 60.0
    max_batch: int = 16
    window_s: float = 0.01
    api_key: str | None = None
    # the model's precision (genkit.runtime.inference_precision): bf16-mixed autocasts its work
    precision: str = "32-true"
    on_ready: Callable[[], None] = field(default=lambda: None)


def build_app(model: GenerativeModel, datamodule: GenkitDataModule, settings: Settings) -> FastAPI:
    text = datamodule.modality == "text"
    fields = (completion_fields if text else image_fields)(model, datamodule, settings.limits)
    endpoint = "/v1/completions" if text else "/v1/images"
    # the image data sets' class names (genkit.data.images.ImageDataModule); text data has none
    class_names = getattr(datamodule, "class_names", None) if model.conditional else None
    state: dict[str, Batcher | ContinuousBatcher] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        def autocast():  # entered in the model's thread: autocast is per thread
            return inference_autocast(model.device, settings.precision)

        if text:  # requests join and leave the running batch between tokens
            runner = TextRunner(model, datamodule, metrics.answered)
            batcher = ContinuousBatcher(runner, settings.max_batch, autocast, metrics.batch_rows.observe)
        else:  # an image batch runs its sampler's steps together: requests share a batch from its start

            def run_batch(jobs: list[Job]) -> None:
                with autocast():
                    run_image_batch(model, datamodule, jobs)

            batcher = Batcher(run_batch, settings.max_batch, settings.window_s)
        batcher.start()
        state["batcher"] = batcher
        settings.on_ready()
        yield
        await batcher.stop()  # the server stopped taking requests and answered those in flight

    app = FastAPI(title="genkit serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    routes = {"/", "/health", "/v1/models", "/metrics", endpoint, *(["/v1/chat/completions"] if text else [])}
    metrics = ServeMetrics(routes)

    @app.middleware("http")
    async def counted(request: Request, call_next: Callable) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        metrics.observe(request.url.path, response.status_code, time.perf_counter() - start)
        return response

    @app.exception_handler(RequestError)
    async def refused(request: Request, err: RequestError) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status)

    @app.exception_handler(HTTPException)
    async def no_route(request: Request, err: HTTPException) -> JSONResponse:
        message = f"{request.method} {request.url.path}: {err.detail}. This server answers GET /, GET /health, " \
                  f"GET /v1/models, GET /metrics and POST {endpoint}."  # fmt: skip
        return JSONResponse(RequestError(message, None, err.status_code).body(), status_code=err.status_code)

    @app.exception_handler(Exception)
    async def failed(request: Request, err: Exception) -> JSONResponse:
        # a fault of the server's, not of the request: still OpenAI's JSON error, never plain text
        # (Starlette sends this answer, then logs the traceback)
        message = f"The server failed on this request ({type(err).__name__}); its log says why."
        return JSONResponse(RequestError(message, None, 500, "server_error").body(), status_code=500)

    def check_key(request: Request) -> None:
        if settings.api_key is None:
            return
        given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.strip().encode(), settings.api_key.encode()):
            raise RequestError(
                "This server needs its API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
                "api_key",
                401,
                "authentication_error",
            )

    async def read_json(request: Request) -> Any:
        check_key(request)
        limit = settings.max_body_bytes
        if int(request.headers.get("content-length") or 0) > limit:
            raise _too_big(limit)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise _too_big(limit)
        try:
            parsed = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError) as err:
            raise RequestError(f"The request body is not JSON ({err}).", "body") from None
        except RecursionError:
            raise RequestError("The request body nests lists or objects too deeply; send a flat object of "
                               "fields.", "body") from None  # fmt: skip
        check_text(parsed)
        return parsed

    async def answer(job: Job) -> Any:
        try:
            return await asyncio.wait_for(asyncio.shield(job.result), settings.timeout_s)
        except TimeoutError:
            raise _too_slow(settings.timeout_s) from None
        except GenkitError as err:  # the family refused this combination of options
            raise RequestError(str(err), None) from None
        except Exception as err:
            log.exception("genkit serve: the model failed on a request")
            raise RequestError(f"The model failed on this request ({type(err).__name__}: {err}).", None, 500,
                               "server_error") from None  # fmt: skip

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        return HTMLResponse(files("genkit.serving").joinpath("page.html").read_text(encoding="utf-8"))

    @app.get("/health")
    async def health(request: Request) -> dict:
        check_key(request)
        batcher = state["batcher"]
        return {"status": "ok", "model": settings.model_id, "queued": batcher.waiting, "busy": batcher.busy}

    @app.get("/metrics")
    async def prometheus(request: Request) -> Response:
        check_key(request)
        batcher = state["batcher"]
        body, content_type = metrics.render(batcher.waiting, batcher.busy)
        return Response(body, media_type=content_type)

    @app.get("/v1/models")
    async def models(request: Request) -> dict:
        check_key(request)
        about: dict[str, Any] = {
            "id": settings.model_id,
            "object": "model",
            "created": 0,
            "owned_by": "genkit",
            "family": type(model).__name__,
            "modality": datamodule.modality,
            "data": datamodule.name,
            "endpoint": endpoint,
            "options": {name: f.describe() for name, f in fields.items()},
            "limits": {**settings.limits, "max_body_bytes": settings.max_body_bytes, "timeout_s": settings.timeout_s},
        }
        if text:
            about["vocab_size"] = model.net.vocab_size
        if class_names is not None:
            about["classes"] = class_names
        return {"object": "list", "data": [about]}

    if text:

        @app.post("/v1/completions")
        async def completions(request: Request) -> Response:
            reqs = read_completions(await read_json(request), fields, model, datamodule)
            jobs = [state["batcher"].submit(req, req.n, stream=req.stream) for req in reqs]
            if reqs[0].stream:  # one prompt (read_completions refuses a streamed list)
                header = response_header(settings.model_id)
                chunks = lambda index, piece, finish: chunk_body(header, index, piece, finish)  # noqa: E731
                return StreamingResponse(_events(jobs[0], settings, chunks), media_type="text/event-stream")
            answers = [(req, await answer(job)) for req, job in zip(reqs, jobs, strict=True)]
            return JSONResponse(completion_body(answers, settings.model_id, datamodule))

        chat = chat_fields(fields)

        @app.post("/v1/chat/completions")
        async def chat_completions(request: Request) -> Response:
            req = read_chat(await read_json(request), chat, fields, model, datamodule)
            job = state["batcher"].submit(req, req.n, stream=req.stream)
            if req.stream:
                chunks = ChatChunks(req, settings.model_id)
                return StreamingResponse(_events(job, settings, chunks), media_type="text/event-stream")
            return JSONResponse(chat_body(req, await answer(job), settings.model_id))

    else:

        @app.post("/v1/images")
        async def images(request: Request) -> Response:
            req = read_images_request(await read_json(request), fields, model, datamodule)
            pngs, labels, others = await answer(state["batcher"].submit(req, req.n))
            if req.as_png:
                return Response(pngs[0], media_type="image/png", headers={"X-Genkit-Seed": str(req.seed)})
            return JSONResponse(images_body(req, pngs, labels, others, class_names))

    return app


async def _events(job: Job, settings: Settings, chunk: Callable[[int, str, str | None], dict]) -> AsyncIterator[str]:
    """Server-sent events as OpenAI streams completions: one chunk per piece of text (made by
    `chunk`: a completion's or a chat's), then [DONE]; an error after the stream began is an event
    carrying OpenAI's error object."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.timeout_s
    while True:
        try:
            piece = await asyncio.wait_for(job.pieces.get(), max(deadline - loop.time(), 0))
        except TimeoutError:
            yield f"data: {json.dumps(_too_slow(settings.timeout_s).body())}\n\n"
            return
        if piece is None:
            break
        index, text, finish_reason = piece
        yield f"data: {json.dumps(chunk(index, text, finish_reason))}\n\n"
    error = job.result.exception()
    if error is not None:
        yield f"data: {json.dumps(RequestError(f'The model failed ({error}).', None, 500, 'server_error').body())}\n\n"
        return
    yield "data: [DONE]\n\n"


def _too_big(limit: int) -> RequestError:
    return RequestError(f"The request body is over this server's limit of {limit} bytes (genkit serve "
                        f"max_body_bytes).", "body", 413)  # fmt: skip


def _too_slow(timeout_s: float) -> RequestError:
    return RequestError(
        f"The request took longer than this server's limit of {timeout_s:g} s (genkit serve timeout); ask for "
        f"fewer tokens, images or steps.",
        "timeout",
        408,
    )
