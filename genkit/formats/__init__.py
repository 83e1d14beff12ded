"""Model formats beyond genkit's own checkpoint: what `genkit export format=...` writes for the libraries
that own them (transformers, diffusers, ONNX Runtime, safetensors)."""
