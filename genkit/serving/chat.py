"""POST /v1/chat/completions: OpenAI's chat completions, answered by the text model's decoding
loop (genkit.serving.text) from the prompt the run's chat template makes of the messages
(genkit.data.chat: genkit's documented template, or a Hugging Face tokenizer's own). An answer
ends at the template's end of turn (the end-of-text token, or the tokenizer's eos), a stop string
or max_tokens; it is sent as OpenAI's `chat.completion` (or `chat.completion.chunk` events).
"""

import time
import uuid
from collections.abc import Mapping
from typing import Any

from genkit.data.chat import GENKIT_CHAT_TEMPLATE, render_chat
from genkit.errors import GenkitError
from genkit.options import Option, Rule
from genkit.serving.fields import Field, RequestError
from genkit.serving.text import Choice, TextRequest, read_completion

MESSAGES = Option(
    None,
    "the conversation so far: a list of {role, content} objects; the answer is the assistant's next turn",
    Rule(
        lambda v: (
            isinstance(v, list)
            and 0 < len(v) <= 256
            and all(isinstance(m, dict) and isinstance(m.get("role"), str) and "content" in m for m in v)
        ),
        'a list of 1 to 256 objects, each with a "role" and a "content"',
    ),
)


def chat_fields(completion: Mapping[str, Field]) -> dict[str, Field]:
    """The completion fields, with `messages` in place of `prompt` (and neither echo nor logprobs)."""
    # a chat's log-probabilities take another shape in OpenAI's API (logprobs: true, top_logprobs)
    return {
        "messages": Field(MESSAGES),
        **{k: v for k, v in completion.items() if k not in ("prompt", "echo", "logprobs")},
    }


def _content(message: dict, k: int) -> str:
    """A message's text: a string, or OpenAI's list of parts whose `text` parts are joined."""
    content = message["content"]
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        if any(p.get("type") != "text" or not isinstance(p.get("text"), str) for p in content):
            raise RequestError(
                f"messages[{k}].content holds a part that is not text; this model reads text parts only "
                f'({{"type": "text", "text": "..."}}).',
                "messages",
            )
        return "".join(p["text"] for p in content)
    if not isinstance(content, str):
        raise RequestError(f"messages[{k}].content must be text (or a list of text parts).", "messages")
    return content


def read_chat(
    body: Any, fields: Mapping[str, Field], completion: Mapping[str, Field], model, datamodule
) -> TextRequest:
    """The chat request as a completion of the prompt its messages make."""
    if not isinstance(body, dict):
        raise RequestError("The request body must be a JSON object of fields.", "body")
    if body.get("messages") is None:
        raise RequestError("messages is required: the conversation, a list of {role, content} objects.", "messages")
    fields["messages"].read("messages", body)
    messages = [{"role": m["role"], "content": _content(m, k)} for k, m in enumerate(body["messages"])]
    unknown = sorted(set(body) - set(fields) - {"model", "user", "stream_options"})
    if unknown:
        raise RequestError(f"{unknown[0]!r} is not a field this endpoint takes; it takes {', '.join(fields)}.",
                           unknown[0])  # fmt: skip
    template = datamodule.chat_template()
    try:
        prompt = render_chat(template, messages, datamodule.tokenizer.boundary)
    except GenkitError as err:
        raise RequestError(str(err), "messages") from None
    except Exception as err:  # the template's own error (a Jinja raise_exception: "roles must alternate")
        raise RequestError(f"The run's chat template refused these messages: {err}", "messages") from None
    others = {k: v for k, v in body.items() if k != "messages"}
    try:
        request = read_completion({**others, "prompt": prompt}, completion, model, datamodule)
    except RequestError as err:
        if err.param == "prompt":
            raise RequestError(str(err), "messages") from None
        raise
    request.stop_ids = datamodule.end_of_turn_ids()
    request.first_space = template == GENKIT_CHAT_TEMPLATE
    return request


def _answer(text: str, request: TextRequest) -> str:
    # genkit's template puts one space between "assistant:" and the answer: the answer is what follows
    return text[1:] if request.first_space and text.startswith(" ") else text


def chat_body(request: TextRequest, choices: list[Choice], model_id: str) -> dict:
    completion_tokens = sum(len(c.ids) for c in choices)
    return {
        **chat_header(model_id, "chat.completion"),
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": _answer(c.text, request)},
                "logprobs": None,
                "finish_reason": c.finish_reason,
            }
            for i, c in enumerate(choices)
        ],
        "usage": {
            "prompt_tokens": len(request.prompt_ids),
            "completion_tokens": completion_tokens,
            "total_tokens": len(request.prompt_ids) + completion_tokens,
        },
        "seed": request.seed,
    }


class ChatChunks:
    """Streamed pieces as `chat.completion.chunk` events: the first of each answer carries the
    role, and genkit's template's leading space is dropped from it."""

    def __init__(self, request: TextRequest, model_id: str):
        self.request, self.header, self.started = request, chat_header(model_id, "chat.completion.chunk"), set()

    def __call__(self, index: int, text: str, finish_reason: str | None) -> dict:
        delta: dict[str, str] = {}
        if index not in self.started:
            delta["role"] = "assistant"
            text = _answer(text, self.request)
            self.started.add(index)
        delta["content"] = text
        return {**self.header, "choices": [{"index": index, "delta": delta, "logprobs": None,
                                            "finish_reason": finish_reason}]}  # fmt: skip


def chat_header(model_id: str, kind: str) -> dict:
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": kind, "created": int(time.time()), "model": model_id}
