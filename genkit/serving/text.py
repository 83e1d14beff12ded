"""POST /v1/completions: OpenAI's completions request, answered by a text model in batches.

Requests batch by prompt length: the network has learned positions and no padding mask, so
rows of one forward pass start from prompts of the same length (the load script's clients share
one prompt; a mix of lengths runs one pass per length). Each request samples its rows with its
own generator, seeded by its `seed`, exactly as `genkit sample prompt=... n=... seed=...` does
(GPT.sample: one torch.multinomial over the request's n rows per token), so a request's text
does not depend on what it was batched with, up to the last bits of the batched matmuls.

The decoding loop reads the network through the GPT family's LanguageModelNet protocol
(`net(idx, cache) -> logits, cache`): one pass over the prompts, then one position per token
from the cache. A completion must fit the network's context (block_size): past it a
transformer re-reads a sliding window token by token, which batches no better than it runs alone.
"""

import dataclasses
import secrets
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from genkit.data.base import GenkitDataModule
from genkit.errors import GenkitError
from genkit.models.base import GenerativeModel, sample_inputs
from genkit.models.nets.transformer import sample_next
from genkit.options import BOOLEAN, Option, Rule, whole_number
from genkit.serving.batcher import Job
from genkit.serving.fields import SEED, Field, RequestError, read_fields

STOP = Option(
    None,
    "text that ends a completion (not included): one string or a list of up to 4",
    Rule(
        lambda v: (
            (isinstance(v, str) and v != "")
            or (isinstance(v, list) and 0 < len(v) <= 4 and all(isinstance(s, str) and s for s in v))
        ),
        "a non-empty string or a list of 1 to 4 non-empty strings",
    ),
)
# fields an OpenAI client may send that change nothing here
IGNORED = ("model", "user", "stream_options")


def completion_fields(model: GenerativeModel, datamodule: GenkitDataModule, limits: Mapping[str, int]) -> dict:
    """The fields of POST /v1/completions, from the options the family and its data declare."""
    family, data = model.sample_options, datamodule.all_input_options()
    return {
        "prompt": Field(data["prompt"]),
        # OpenAI's default length, 16 tokens (the family's CLI default, 200, outruns small contexts)
        "max_tokens": Field(
            dataclasses.replace(family["max_new_tokens"], default=16), limits["max_tokens"], "max_tokens"
        ),
        "temperature": Field(family["temperature"]),
        "top_p": Field(family["top_p"]),
        "top_k": Field(family["top_k"]),
        "n": Field(Option(1, "completions of the prompt", whole_number(1)), limits["max_n"], "max_n"),
        "stop": Field(STOP),
        "seed": Field(SEED),
        "stream": Field(Option(False, "send the text as it is made (server-sent events)", BOOLEAN)),
    }


@dataclass
class TextRequest:
    prompt_ids: list[int]
    n: int
    max_tokens: int
    temperature: float
    top_k: int | None
    top_p: float | None
    stop: list[str]
    seed: int
    stream: bool
    generator: torch.Generator | None = None


def read_completion(body: Any, fields: Mapping[str, Field], model: GenerativeModel, datamodule) -> TextRequest:
    values = read_fields(body, fields, IGNORED)
    if values["seed"] is None:
        values["seed"] = secrets.randbelow(2**63)  # within the rule of `seed`, so the answer can be replayed
    try:
        prompt_ids = sample_inputs(model, datamodule, values["n"], {"prompt": values["prompt"]})["prompt_ids"]
    except GenkitError as err:  # the tokenizer's word on a prompt it cannot encode
        raise RequestError(str(err), "prompt") from None
    context = model.net.block_size
    if "max_tokens" not in body:  # OpenAI's default of 16, within the context of a small model
        values["max_tokens"] = max(min(values["max_tokens"], context - len(prompt_ids)), 1)
    if len(prompt_ids) + values["max_tokens"] > context:
        raise RequestError(
            f"The prompt ({len(prompt_ids)} tokens with the start token) plus max_tokens={values['max_tokens']} "
            f"exceeds the model's context of {context} tokens; ask for at most "
            f"{max(context - len(prompt_ids), 0)} tokens or shorten the prompt.",
            "max_tokens",
        )
    stop = values["stop"]
    return TextRequest(
        prompt_ids=prompt_ids,
        n=values["n"],
        max_tokens=values["max_tokens"],
        temperature=values["temperature"],
        top_k=values["top_k"],
        top_p=values["top_p"],
        stop=[stop] if isinstance(stop, str) else list(stop or []),
        seed=values["seed"],
        stream=values["stream"],
    )


@dataclass
class Choice:
    """One completion as it grows: its token ids, the text sent so far (streaming), its end."""

    ids: list[int] = field(default_factory=list)
    text: str = ""
    sent: int = 0
    finish_reason: str | None = None

    def grow(self, token: int, decode, request: TextRequest, last: bool) -> tuple[str, str | None] | None:
        """Add a token; returns (new text to send, finish reason) when there is something to say."""
        self.ids.append(token)
        if not request.stop and not request.stream and not last:
            return None
        self.text = decode(self.ids)
        hits = [self.text.find(s) for s in request.stop if s in self.text]
        if hits:
            self.text, self.finish_reason = self.text[: min(hits)], "stop"
        elif last:
            self.finish_reason = "length"
        ready = len(self.text) if self.finish_reason else _safe_end(self.text, request.stop)
        piece, self.sent = self.text[self.sent : ready], max(self.sent, ready)
        return (piece, self.finish_reason) if piece or self.finish_reason else None


def _safe_end(text: str, stops: list[str]) -> int:
    """How much of unfinished text can be sent: not a tail that may begin a stop string, nor an
    undecoded partial character (a byte-level BPE token can hold half of one)."""
    end = len(text)
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:k]):
                end = min(end, len(text) - k)
                break
    while end > 0 and text[end - 1] == "\ufffd":
        end -= 1
    return end


def run_text_batch(model: GenerativeModel, datamodule: GenkitDataModule, jobs: list[Job]) -> None:
    """Generate for every job (in the model's worker thread): one decoding loop per prompt length."""
    by_length: dict[int, list[Job]] = defaultdict(list)
    for job in jobs:
        by_length[len(job.payload.prompt_ids)].append(job)
    for group in by_length.values():
        try:
            _decode(model, datamodule, group)
        except Exception as err:
            for job in group:
                job.fail(err)


@torch.inference_mode()
def _decode(model: GenerativeModel, datamodule: GenkitDataModule, jobs: list[Job]) -> None:
    device, net = model.device, model.net
    requests: list[TextRequest] = [job.payload for job in jobs]
    spans, start = [], 0
    for r in requests:
        r.generator = torch.Generator(device=device).manual_seed(r.seed)
        spans.append((start, start + r.n))
        start += r.n
    first = requests[0].prompt_ids[:1]  # decode drops a row's first token (the start token)

    def decode(ids: list[int]) -> str:
        return datamodule.samples_as_text(torch.tensor([first + ids]))[0]

    choices = [[Choice() for _ in range(r.n)] for r in requests]
    active = [True] * len(jobs)
    idx = torch.tensor([r.prompt_ids for r in requests for _ in range(r.n)], dtype=torch.long, device=device)
    logits, cache = net(idx)  # (B, T, vocab): the prompts, once
    steps = max(r.max_tokens for r in requests)
    for step in range(steps):
        last_logits = logits[:, -1, :]  # (B, vocab)
        new = torch.zeros(len(idx), 1, dtype=torch.long, device=device)
        for k, (r, (a, b)) in enumerate(zip(requests, spans, strict=True)):
            if active[k]:
                new[a:b] = sample_next(last_logits[a:b], r.temperature, r.top_k, r.top_p, r.generator)
        tokens = new[:, 0].tolist()
        for k, (job, r, (a, _)) in enumerate(zip(jobs, requests, spans, strict=True)):
            if not active[k]:
                continue
            for i, choice in enumerate(choices[k]):
                if choice.finish_reason is None:
                    said = choice.grow(tokens[a + i], decode, r, last=step == r.max_tokens - 1)
                    if said is not None and r.stream:
                        job.emit((i, *said))
            if all(c.finish_reason for c in choices[k]):
                active[k] = False
                job.finish(choices[k])
        if not any(active):
            break
        logits, cache = net(new, cache)  # (B, 1, vocab): one position from the cache


def completion_body(request: TextRequest, choices: list[Choice], model_id: str) -> dict:
    completion_tokens = sum(len(c.ids) for c in choices)
    prompt_tokens = len(request.prompt_ids)
    return {
        **response_header(model_id),
        "choices": [
            {"text": c.text, "index": i, "logprobs": None, "finish_reason": c.finish_reason}
            for i, c in enumerate(choices)
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "seed": request.seed,
    }


def chunk_body(header: dict, index: int, text: str, finish_reason: str | None) -> dict:
    return {**header, "choices": [{"text": text, "index": index, "logprobs": None, "finish_reason": finish_reason}]}


def response_header(model_id: str) -> dict:
    created = int(time.time())
    return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": created, "model": model_id}
