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
