"""Options, each declared once: its default, its rule (type and range) and its help line.

A command declares its own options (genkit.commands.<verb>.OPTIONS); a family declares the ones
its sample() and test loop take (GenerativeModel.sample_options, test_options), a data set the
inputs it can generate from (GenkitDataModule.input_options). The command's config, its
`--help` and the error paragraphs are all made from these declarations
(genkit.commands.command_options), so adding an option is one edit.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from genkit.errors import GenkitError


@dataclass(frozen=True)
class Rule:
    """What a value must be: a test, and the words that say it in an error."""

    test: Callable[[Any], bool]
    words: str


def whole_number(low: int) -> Rule:
    return Rule(
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low, f"a whole number of at least {low}"
    )


def number(test: Callable[[float], bool], words: str) -> Rule:
    """A finite number (an int within a float's range, or a float but inf and nan) that passes
    `test`. `words` say the range ("a number of at least 0") and the error says "a finite number
    of at least 0": inf passes range tests (inf >= 0), so this rule refuses it for every caller."""
    return Rule(
        lambda v: isinstance(v, int | float) and not isinstance(v, bool) and _finite(v) and test(v),
        words.replace("a number", "a finite number", 1),
    )


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # a whole number past the largest float (JSON's 1 followed by 400 zeros)
        return False


def one_of(*choices) -> Rule:
    return Rule(lambda v: v in choices, f"one of {', '.join(str(c).lower() for c in choices)}")


def lone_surrogate(value: Any) -> str | None:
    """The first lone surrogate in a string, or in the strings of nested lists and dicts (walked
    without recursion: JSON nests as deep as a body is long), written as its escape, \\udxxx.
    It is half of a UTF-16 pair, no character: JSON's "\\ud800" decodes to one, and so do bytes
    that are not UTF-8 on a command line. No tokenizer encodes it, no UTF-8 output can hold it."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as err:
                return f"\\u{ord(item[err.start]):04x}"
        elif isinstance(item, dict):
            stack.extend([*item.keys(), *item.values()])
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return None


BOOLEAN = Rule(lambda v: isinstance(v, bool), "true or false")
TEXT = Rule(
    lambda v: isinstance(v, str) and lone_surrogate(v) is None,
    "text, in UTF-8 (a lone surrogate such as \\ud800 is no character)",
)
MODULE_PREFIXES = Rule(
    lambda v: isinstance(v, Sequence) and not isinstance(v, str) and all(isinstance(p, str) for p in v),
    "a list of module prefixes, e.g. [my_project.models.]",
)


@dataclass(frozen=True)
class Option:
    """One option: `default` as the config holds it, the `help` line, and the `rule` a value
    other than null must follow (None: any value, e.g. a path)."""

    default: Any
    help: str
    rule: Rule | None = None
    #: how the help shows the value (default: key=<default>)
    shown: str | None = None
    #: the largest value taken without force=true: beyond it a request runs for minutes or fills
    #: memory, which is more often a slip of the keyboard than a wish (None: no limit)
    limit: int | None = None

    def check_limit(self, key: str, value: Any, command: str, forced: bool) -> None:
        if self.limit is None or forced or not isinstance(value, int | float) or value <= self.limit:
            return
        raise GenkitError(
            f"{key}={value} is more than `genkit {command}` takes without being told: its limit is {key}={self.limit} "
            f"(a larger request runs for minutes or more). Pass force=true to run it anyway, or ask for less."
        )

    def check(self, key: str, value: Any, command: str) -> None:
        if value is None or self.rule is None or self.rule.test(value):
            return
        raise GenkitError(f"{key}={value!r} is not valid for `genkit {command}`: {key} must be {self.rule.words}.")

    def usage(self, key: str) -> str:
        if self.shown is not None:
            return self.shown
        default = (
            "null"
            if self.default is None
            else str(self.default).lower()
            if isinstance(self.default, bool)
            else self.default
        )
        return f"{key}={default}"
