"""The tiny checkpoints of tests/conftest.py, loaded once per module for the serving tests."""

import pytest


@pytest.fixture(scope="module")
def tiny_gpt(tiny_gpt_checkpoint):
    from genkit.training.restore import load_model

    return load_model(tiny_gpt_checkpoint)


@pytest.fixture(scope="module")
def tiny_cdiffusion(tiny_cdiffusion_checkpoint):
    from genkit.training.restore import load_model

    return load_model(tiny_cdiffusion_checkpoint, data_root=str(tiny_cdiffusion_checkpoint.parents[3] / "data"))


class RecordingJob:
    """Stands in for genkit.serving.batcher.Job: keeps what the batch runner said to it."""

    def __init__(self, payload, rows: int = 1):
        self.payload, self.rows = payload, rows
        self.pieces, self.result, self.error = [], None, None

    def emit(self, piece):
        self.pieces.append(piece)

    def finish(self, value):
        self.result = value

    def fail(self, error):
        self.error = error
