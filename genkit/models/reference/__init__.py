"""Hand-written PyTorch loops (no Lightning) of genkit's families: what `genkit bench` measures
genkit against. A family hands out its own through `GenerativeModel.reference_loop`."""
