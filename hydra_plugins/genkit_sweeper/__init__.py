"""Hydra loads sweepers only from classes defined in the `hydra_plugins` package; genkit's
Optuna sweeper is implemented in genkit/training/sweeper.py and registered here under that package."""

from genkit.training import sweeper


class OptunaSweeper(sweeper.OptunaSweeper):
    """genkit's Optuna sweeper (see genkit.training.sweeper)."""
