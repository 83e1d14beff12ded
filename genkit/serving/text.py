"""POST /v1/completions: OpenAI's completions request read into TextRequests, and the answer's
body (genkit.serving.text_runner generates it, in the model's thread, batched continuously).

A completion may run past the network's context: its window then slides, as in `genkit sample`.
Only a prompt whose own tokens are scored (echo with logprobs) must fit the context."""

import dataclasses
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from genkit.data.base import GenkitDataModule
from genkit.errors import GenkitError
from genkit.models.base import GenerativeModel, sample_inputs
from genkit.options import BOOLEAN, Option, Rule, whole_number
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
    return [_request(values, p, k, model, datamodule) for k, p in enumerate(prompts)]


def _request(values: dict, prompt: str | list[int], index: int, model, datamodule) -> TextRequest:
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
        prompt_ids = [datamodule.tokenizer.eot_id, *prompt]
    context = model.net.context_length
    if values["echo"] and values["logprobs"] is not None and context is not None and len(prompt_ids) > context:
        raise RequestError(
            f"The prompt ({len(prompt_ids)} tokens with the start token) is longer than the model's context of "
            f"{context} tokens, so its tokens cannot all be scored (echo with logprobs); shorten the prompt.",
            "prompt",
        )
    max_tokens = values["max_tokens"]
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


def token_scores(logits: torch.Tensor, tokens: torch.Tensor, k: int) -> list[tuple[float, dict[int, float]]]:
    """For each row of logits (N, vocab): the log-probability of its token and the k likeliest
    tokens' (id -> log-probability)."""
    logp = logits.float().log_softmax(dim=-1)
    picked = logp.gather(1, tokens[:, None])[:, 0].tolist()
    top_values, top_ids = logp.topk(k, dim=-1) if k else (logp[:, :0], tokens[:, None][:, :0])
    return [
        (value, dict(zip(ids, values, strict=True)))
        for value, ids, values in zip(picked, top_ids.tolist(), top_values.tolist(), strict=True)
    ]


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
