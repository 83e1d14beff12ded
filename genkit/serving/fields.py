"""The fields of a request: each checked by the rule of the option it stands for, and refused
with a 4xx JSON error that names the field (OpenAI's error shape: message, type, param)."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from genkit.errors import GenkitError
from genkit.options import Option, Rule, lone_surrogate


class RequestError(GenkitError):
    """A request the server refuses: its HTTP status and the field at fault."""

    def __init__(self, message: str, param: str | None, status: int = 400, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.param, self.status, self.kind = param, status, kind

    def body(self) -> dict:
        return {"error": {"message": str(self), "type": self.kind, "param": self.param, "code": None}}


@dataclass(frozen=True)
class Field:
    """One request field: the option whose rule and default it takes, and an upper limit."""

    option: Option
    most: int | None = None  # the server's limit (serve options max_n, max_tokens, max_steps)
    limit_name: str = ""  # the serve option that sets it, for the error

    def read(self, name: str, body: Mapping[str, Any]) -> Any:
        value = body.get(name)
        if value is None:
            return self.option.default
        rule = self.option.rule
        if rule is not None and not rule.test(value):
            raise RequestError(f"{name}={value!r} is not valid: {name} must be {rule.words}.", name)
        if self.most is not None and value > self.most:
            raise RequestError(
                f"{name}={value!r} is over this server's limit of {self.most} (genkit serve {self.limit_name}).",
                name,
            )
        return value

    def describe(self) -> dict:
        """For GET /v1/models: the default, what a value must be, the limit."""
        out = {"default": self.option.default, "help": self.option.help}
        if self.option.rule is not None:
            out["must_be"] = self.option.rule.words
        if self.most is not None:
            out["max"] = self.most
        return out


def read_fields(body: Any, fields: Mapping[str, Field], ignored: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every field's value (its default when absent); a field the endpoint does not take is refused."""
    if not isinstance(body, dict):
        raise RequestError("The request body must be a JSON object of fields.", "body")
    unknown = sorted(set(body) - set(fields) - set(ignored))
    if unknown:
        raise RequestError(
            f"{unknown[0]!r} is not a field this endpoint takes; it takes {', '.join(fields)}.", unknown[0]
        )
    return {name: field.read(name, body) for name, field in fields.items()}


def check_text(body: Any) -> None:
    """Every string of a request body, keys included, must be Unicode text. JSON's escapes let a
    client send half of a UTF-16 surrogate pair alone ("\\ud800"), which decodes to no character:
    no tokenizer encodes it and no UTF-8 response can echo it, so it is refused by its field."""
    if not isinstance(body, dict):
        return  # read_fields refuses a body that is not an object, whatever it holds
    for key, value in body.items():
        if lone_surrogate(key) is not None:
            # the key itself cannot be named in a UTF-8 answer: its escaped form says which
            raise RequestError(_not_text(f"A field name ({key!r})", lone_surrogate(key)), "body")
        found = lone_surrogate(value)
        if found is not None:
            raise RequestError(_not_text(key, found), key)


def _not_text(what: str, surrogate: str) -> str:
    return (
        f"{what} is not valid text: it holds {surrogate}, one half of a UTF-16 surrogate pair without the other, "
        f"which is no character. Send the text as UTF-8, or escape a character beyond U+FFFF as both halves of "
        f"its pair (\\ud83d\\ude00)."
    )


def whole_number_up_to(low: int, high: int) -> Rule:
    return Rule(
        lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high,
        f"a whole number from {low} to {high}",
    )


SEED = Option(None, "the random seed (default: a fresh one for each request)", whole_number_up_to(0, 2**63 - 1))
