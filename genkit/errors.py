"""Errors caused by what the user asked for.

The CLI prints a GenkitError's message as one paragraph and exits non-zero, without a
traceback: the message itself must say what was wrong and how to fix it.
"""


class GenkitError(Exception):
    """A mistake in the user's input or environment, explained in the message."""

    # what the CLI exits with
    exit_code = 2


class DataUnavailableError(GenkitError):
    """A data set is not on disk and could not be downloaded."""


class ChecksumError(GenkitError):
    """A downloaded file does not have the expected SHA-256."""


class CheckpointError(GenkitError):
    """A checkpoint path is missing, unreadable, or not written by genkit."""


class Interrupted(GenkitError):
    """Training was stopped by a signal after saving its state."""

    exit_code = 143  # 128 + SIGTERM, as shells report a run ended by SIGTERM


def first_line(err: BaseException, limit: int = 200) -> str:
    """`TypeName: the first line of its message` for an error paragraph; many errors of damaged
    files (an EOFError of an empty file) carry no message at all, and then the type is all."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0][:limit]}" if lines else type(err).__name__
