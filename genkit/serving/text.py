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
# OpenAI's most alternatives per token in `logprobs`
MAX_LOGPROBS = 5


def _ids(v: Any) -> bool:
    return isinstance(v, list) and len(v) > 0 and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                                                      for i in v)  # fmt: skip


# OpenAI's prompt: a text, a list of texts, a list of token ids, or a list of lists of token ids
PROMPTS = Rule(
    lambda v: (
        isinstance(v, str)
        or (isinstance(v, list) and len(v) > 0 and (all(isinstance(x, str) for x in v) or _ids(v)
                                                    or all(_ids(x) for x in v)))
    ),
    "a text, a list of texts, a list of token ids or a list of lists of token ids",
)  # fmt: skip


def completion_fields(model: GenerativeModel, datamodule: GenkitDataModule, limits: Mapping[str, int]) -> dict:
    """The fields of POST /v1/completions, from the options the family and its data declare."""
    family, data = model.sample_options, datamodule.all_input_options()
    return {
        "prompt": Field(dataclasses.replace(data["prompt"], rule=PROMPTS)),
        # OpenAI's default length, 16 tokens (the family's CLI default, 200, outruns small contexts);
        # 0 with echo: the prompt scored, nothing generated
        "max_tokens": Field(
            dataclasses.replace(family["max_new_tokens"], default=16, rule=whole_number(0)),
            limits["max_tokens"],
            "max_tokens",
        ),
        "temperature": Field(family["temperature"]),
        "top_p": Field(family["top_p"]),
        "top_k": Field(family["top_k"]),
        "n": Field(Option(1, "completions of the prompt", whole_number(1)), limits["max_n"], "max_n"),
        "stop": Field(STOP),
        "seed": Field(SEED),
        "stream": Field(Option(False, "send the text as it is made (server-sent events)", BOOLEAN)),
        "echo": Field(Option(False, "answer with the prompt before the completion (its tokens scored too)", BOOLEAN)),
        "logprobs": Field(
            Option(
                None,
                f"each token's log-probability and its k likeliest alternatives (k up to {MAX_LOGPROBS})",
                whole_number(0),
            ),
            MAX_LOGPROBS,
            "the most alternatives OpenAI gives",
        ),  # fmt: skip
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
    # tokens that end an answer without being part of it (a chat's end of turn)
    stop_ids: list[int] = field(default_factory=list)
    # a chat in genkit's template: the answer's first space separates it from "assistant:"
    first_space: bool = False
    echo: bool = False
    logprobs: int | None = None  # None: no log-probabilities; k: each token's and its k likeliest alternatives
    index: int = 0  # which prompt of the request's list (its choices are index * n + i)
    # the prompt's tokens scored (echo with logprobs), filled by the decoding loop: (log-probability,
    # top alternatives) of each prompt token after the start token
    prompt_scores: list[tuple[float, dict[int, float]]] = field(default_factory=list)


def read_completion(body: Any, fields: Mapping[str, Field], model: GenerativeModel, datamodule) -> TextRequest:
    """A request of one prompt (a chat's, or a completion's)."""
    requests = read_completions(body, fields, model, datamodule)
    if len(requests) > 1:
        raise RequestError("prompt must be one text here.", "prompt")
    return requests[0]


def read_completions(body: Any, fields: Mapping[str, Field], model: GenerativeModel, datamodule) -> list[TextRequest]:
    """One request per prompt of the body (OpenAI's prompt may be a list), each answered with n
    completions."""
    values = read_fields(body, fields, IGNORED)
    if values["seed"] is None:
        values["seed"] = secrets.randbelow(2**63)  # within the rule of `seed`, so the answer can be replayed
    prompt = values["prompt"]
    prompts = [prompt] if isinstance(prompt, str) or _ids(prompt) else list(prompt)
    limit = fields["n"].most
    if limit is not None and len(prompts) * values["n"] > limit:
        raise RequestError(f"{len(prompts)} prompts x n={values['n']} completions is over this server's limit of "
                           f"{limit} completions a request (genkit serve max_n).", "prompt")  # fmt: skip
    if values["stream"] and len(prompts) > 1:
        raise RequestError("stream=true answers one prompt: send the prompts of a list one request each.", "stream")
    if values["stream"] and (values["echo"] or values["logprobs"] is not None):
        raise RequestError("stream=true sends text only: ask for echo or logprobs without streaming.", "stream")
    if values["max_tokens"] == 0 and not values["echo"]:
        raise RequestError("max_tokens=0 generates nothing: it needs echo=true (the prompt scored).", "max_tokens")
    if (values["echo"] or values["logprobs"] is not None) and getattr(model, "label_head", None) is not None:
        raise RequestError(
            "This run answers with labels (model.head=labels): its answers have no token log-probabilities; send "
            "echo and logprobs to a run without a label head.",
            "logprobs",
        )
    return [_request(values, p, k, "max_tokens" in body, model, datamodule) for k, p in enumerate(prompts)]


def _request(values: dict, prompt: str | list[int], index: int, asked_length: bool, model, datamodule) -> TextRequest:
    vocab = model.net.vocab_size
    if isinstance(prompt, str):
        try:
            prompt_ids = sample_inputs(model, datamodule, values["n"], {"prompt": prompt})["prompt_ids"]
        except GenkitError as err:  # the tokenizer's word on a prompt it cannot encode
            raise RequestError(str(err), "prompt") from None
    elif max(prompt) >= vocab:
        raise RequestError(f"prompt holds the token id {max(prompt)}, and this model's ids are 0 to {vocab - 1}.",
                           "prompt")  # fmt: skip
    else:  # token ids: after the start token, as genkit's own prompts are
        prompt_ids = [datamodule.tokenizer.bos_id, *prompt]
    context = model.net.block_size
    max_tokens = values["max_tokens"]
    if not asked_length:  # OpenAI's default of 16, within the context of a small model
        max_tokens = max(min(max_tokens, context - len(prompt_ids)), 0 if values["echo"] else 1)
    if len(prompt_ids) + max_tokens > context:
        raise RequestError(
            f"The prompt ({len(prompt_ids)} tokens with the start token) plus max_tokens={max_tokens} "
            f"exceeds the model's context of {context} tokens; ask for at most "
            f"{max(context - len(prompt_ids), 0)} tokens or shorten the prompt.",
            "max_tokens",
        )
    stop = values["stop"]
    return TextRequest(
        prompt_ids=prompt_ids,
        n=values["n"],
        max_tokens=max_tokens,
        temperature=values["temperature"],
        top_k=values["top_k"],
        top_p=values["top_p"],
        stop=[stop] if isinstance(stop, str) else list(stop or []),
        seed=values["seed"],
        stream=values["stream"],
        echo=values["echo"],
        logprobs=values["logprobs"],
        index=index,
    )


@dataclass
class Choice:
    """One completion as it grows: its token ids, the text sent so far (streaming), its end."""

    ids: list[int] = field(default_factory=list)
    text: str = ""
    sent: int = 0
    finish_reason: str | None = None
    # with logprobs: each generated token's log-probability and its top alternatives (id -> value)
    scores: list[tuple[float, dict[int, float]]] = field(default_factory=list)

    def grow(self, token: int, decode, request: TextRequest, last: bool) -> tuple[str, str | None] | None:
        """Add a token; returns (new text to send, finish reason) when there is something to say."""
        if token in request.stop_ids:
            self.finish_reason = "stop"
            self.text = decode(self.ids) if self.ids else ""
            piece, self.sent = self.text[self.sent :], len(self.text)
            return piece, self.finish_reason
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
    # a run with a label head (model.head=labels) answers with a label's text, not generated text
    decode = _label_answers if getattr(model, "label_head", None) is not None else _decode
    for group in by_length.values():
        try:
            decode(model, datamodule, group)
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
    for k, (job, r, (a, _)) in enumerate(zip(jobs, requests, spans, strict=True)):
        if r.echo and r.logprobs is not None:  # the prompt's own tokens scored, from the same pass
            r.prompt_scores = _scores(logits[a, :-1], idx[a, 1:], r.logprobs)
        if r.max_tokens == 0:  # echo only: nothing to generate
            for choice in choices[k]:
                choice.finish_reason = "length"
            active[k] = False
            job.finish(choices[k])
    steps = max(r.max_tokens for r in requests)
    for step in range(steps if any(active) else 0):
        last_logits = logits[:, -1, :]  # (B, vocab)
        new = torch.zeros(len(idx), 1, dtype=torch.long, device=device)
        for k, (r, (a, b)) in enumerate(zip(requests, spans, strict=True)):
            if active[k]:
                new[a:b] = sample_next(last_logits[a:b], r.temperature, r.top_k, r.top_p, r.generator)
        tokens = new[:, 0].tolist()
        for k, (job, r, (a, b)) in enumerate(zip(jobs, requests, spans, strict=True)):
            if not active[k]:
                continue
            # the model's own distribution (before temperature and truncation), as OpenAI reports it
            scored = _scores(last_logits[a:b], new[a:b, 0], r.logprobs) if r.logprobs is not None else None
            for i, choice in enumerate(choices[k]):
                if choice.finish_reason is None:
                    kept = len(choice.ids)
                    said = choice.grow(tokens[a + i], decode, r, last=step == r.max_tokens - 1)
                    if scored is not None and len(choice.ids) > kept:
                        choice.scores.append(scored[i])
                    if said is not None and r.stream:
                        job.emit((i, *said))
            if all(c.finish_reason for c in choices[k]):
                active[k] = False
                job.finish(choices[k])
        if not any(active):
            break
        logits, cache = net(new, cache)  # (B, 1, vocab): one position from the cache


def _scores(logits: torch.Tensor, tokens: torch.Tensor, k: int) -> list[tuple[float, dict[int, float]]]:
    """For each row of logits (N, vocab): the log-probability of its token and the k likeliest
    tokens' (id -> log-probability)."""
    logp = logits.float().log_softmax(dim=-1)
    picked = logp.gather(1, tokens[:, None])[:, 0].tolist()
    top_values, top_ids = logp.topk(k, dim=-1) if k else (logp[:, :0], tokens[:, None][:, :0])
    return [
        (value, dict(zip(ids, values, strict=True)))
        for value, ids, values in zip(picked, top_ids.tolist(), top_values.tolist(), strict=True)
    ]


@torch.inference_mode()
def _label_answers(model: GenerativeModel, datamodule: GenkitDataModule, jobs: list[Job]) -> None:
    """Each request's n answers: the label the head picks (temperature 0) or draws, as its text."""
    for job in jobs:
        r: TextRequest = job.payload
        generator = torch.Generator(device=model.device).manual_seed(r.seed)
        rows = model.sample(r.n, generator=generator, prompt_ids=r.prompt_ids, temperature=r.temperature)
        choices = []
        for row in rows[:, len(r.prompt_ids) :].tolist():
            row = row[: row.index(row[-1]) + 1]  # up to its closing end-of-text (the rows are padded with it)
            choice = Choice(ids=row, text=datamodule.decode_completion(row), finish_reason="stop")
            choices.append(choice)
            if r.stream:
                job.emit((len(choices) - 1, choice.text, "stop"))
        job.finish(choices)


def texts_of(datamodule: GenkitDataModule):
    """(ids -> text, one token's text): ids decoded as genkit writes samples, without the start token."""

    def text(ids: list[int]) -> str:
        return datamodule.samples_as_text(torch.tensor([[0, *ids]]))[0]

    return text, lambda token: text([token])


def completion_body(answers: list[tuple[TextRequest, list[Choice]]], model_id: str, datamodule) -> dict:
    """OpenAI's completion: every prompt's choices (prompt k's i-th at index k * n + i), with the
    prompt before the text (echo) and each token's log-probability (logprobs)."""
    text, token_text = texts_of(datamodule)
    out, prompt_tokens, completion_tokens = [], 0, 0
    for request, choices in answers:
        prompt_tokens += len(request.prompt_ids)
        completion_tokens += sum(len(c.ids) for c in choices)
        # the prompt without genkit's start token: what the client sent
        prompt_text = text(request.prompt_ids[1:]) if request.echo else ""
        for i, c in enumerate(choices):
            out.append({
                "text": prompt_text + c.text,
                "index": request.index * request.n + i,
                "logprobs": _logprobs(request, c, token_text) if request.logprobs is not None else None,
                "finish_reason": c.finish_reason,
            })  # fmt: skip
    return {
        **response_header(model_id),
        "choices": out,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "seed": answers[0][0].seed,
    }


def _logprobs(request: TextRequest, choice: Choice, token_text) -> dict:
    """OpenAI's logprobs object: tokens (the prompt's with echo, then the generated ones), their
    log-probabilities, their top alternatives and where each starts in the answer's text."""
    ids = [*(request.prompt_ids[1:] if request.echo else []), *choice.ids[: len(choice.scores)]]
    scores = [*(request.prompt_scores if request.echo else []), *choice.scores]
    tokens = [token_text(t) for t in ids]
    offsets, at = [], 0
    for token in tokens:
        offsets.append(at)
        at += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": [value for value, _ in scores],
        "top_logprobs": [{token_text(t): v for t, v in top.items()} for _, top in scores],
        "text_offset": offsets,
    }


def chunk_body(header: dict, index: int, text: str, finish_reason: str | None) -> dict:
    return {**header, "choices": [{"text": text, "index": index, "logprobs": None, "finish_reason": finish_reason}]}


def response_header(model_id: str) -> dict:
    created = int(time.time())
    return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": created, "model": model_id}
