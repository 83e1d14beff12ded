"""Data modules: MNIST-format image sets and token streams, with their download and caching."""
