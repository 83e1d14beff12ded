"""Checkpoint files: finding, reading and writing them, what genkit trusts in them, starting weights."""
