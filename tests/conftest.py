"""Fixtures shared by the tests (helpers live in tests/helpers.py)."""

from pathlib import Path

import pytest

from tests.helpers import write_tiny_image_set


@pytest.fixture
def tiny_data_root(tmp_path: Path) -> Path:
    """A data root holding tiny MNIST and Fashion-MNIST look-alikes."""
    root = tmp_path / "data"
    write_tiny_image_set(root / "mnist")
    write_tiny_image_set(root / "fashion-mnist", seed=1)
    return root
