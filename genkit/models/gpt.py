"""The language-model family's old module: configs written before it was renamed name
`genkit.models.gpt.GPT` (checkpoints' stored configs are renamed on reading, MOVED_TARGETS in
genkit/checkpoints/trust.py; a user's own YAML is not)."""

from genkit.models.lm import LanguageModel as GPT

__all__ = ["GPT"]
