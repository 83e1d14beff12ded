"""Errors caused by what the user asked for.

The CLI prints a GenkitError's message as one paragraph and exits non-zero, without a
traceback: the message itself must say what was wrong and how to fix it.
"""


class GenkitError(Exception):
    """A mistake in the user's input or environment, explained in the message."""


class DataUnavailableError(GenkitError):
    """A data set is not on disk and could not be downloaded."""


class ChecksumError(GenkitError):
    """A downloaded file does not have the expected SHA-256."""


class CheckpointError(GenkitError):
    """A checkpoint path is missing, unreadable, or not written by genkit."""
