"""Chat messages as a prompt, for `POST /v1/chat/completions` and the chat template of exports.

A run answers a chat with the template it was taught with: a prompt -> completion run
(data=pairs) flattens `messages` records with genkit's documented template (genkit.data.records.
CHAT_TURN: each message `<role>: <content>` on a line, then `assistant:`), written here in Jinja so
that the same text comes out of genkit and of transformers' `apply_chat_template` on an export; a
run on plain text from a Hugging Face model that has a chat template (a tokenizer_config.json's
`chat_template`) uses that; any other run genkit's. Templates are rendered by transformers' own
renderer (a sandboxed Jinja environment), so a template from a stranger's checkpoint runs no code.
"""

from collections.abc import Sequence

# genkit's template (genkit.data.records.chat_pair flattens training records the same way; a test
# holds the two equal)
GENKIT_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def exported_chat_template(template: str, separator: str) -> str:
    """The chat template of a `format=hf` export, so that transformers' `apply_chat_template` (which
    encodes without adding special tokens) writes the prompt genkit does: genkit's template gets the
    boundary token before it and a pairs run's separator after the generation prompt; a Hugging
    Face tokenizer's own template already writes its bos_token and is kept as it is."""
    if template != GENKIT_CHAT_TEMPLATE:
        return template
    after = "{% if add_generation_prompt %}" + separator.replace("{", "{{ '{' }}") + "{% endif %}" if separator else ""
    return "{{ bos_token }}" + template + after


def render_chat(template: str, messages: Sequence[dict], boundary: str | None) -> str:
    """The prompt text of a chat, the assistant's turn to come. A leading boundary token that the
    template writes (`{{ bos_token }}`) is left out: genkit puts it before every prompt itself."""
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template(
        [list(messages)], chat_template=template, add_generation_prompt=True, bos_token=boundary or "",
        eos_token=boundary or "",
    )  # fmt: skip
    text = rendered[0]
    return text[len(boundary) :] if boundary and text.startswith(boundary) else text
