"""Networks injected into the model families through their `net` configs."""
