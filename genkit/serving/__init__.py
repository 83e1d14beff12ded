"""Serving a loaded model over HTTP (`genkit serve`): the app, its request batching and its page."""
