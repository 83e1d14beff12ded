"""genkit: config-driven training of generative models."""

__version__ = "0.1.0"
