"""Lightning callbacks genkit adds to every run: checkpoints, sample grids, progress lines."""
