"""The verbs of the genkit command, one module each, and the checks of their options."""
