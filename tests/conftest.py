"""Fixtures shared by the tests (helpers live in tests/helpers.py)."""

import functools
import http.server
import os
import threading
from pathlib import Path

# under pytest-xdist (`make test`: two workers on two cores) each worker, and the genkit
# processes its tests start, computes on one thread: two workers of two threads each would
# contend for the cores
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

from tests.helpers import TINY_IMAGE_RUN, make_cfg, tiny_text_run, write_tiny_image_set


@pytest.fixture
def tiny_data_root(tmp_path: Path) -> Path:
    """A data root holding tiny MNIST and Fashion-MNIST look-alikes."""
    root = tmp_path / "data"
    write_tiny_image_set(root / "mnist")
    write_tiny_image_set(root / "fashion-mnist", seed=1)
    return root


@pytest.fixture(scope="session")
def mnist_classifier_cache(tmp_path_factory) -> Path:
    """An XDG_CACHE_HOME that every pytest-xdist worker of this session shares: the MNIST domain
    classifier that evals on the real data train is trained once (genkit's lock makes a second
    eval wait for the first one's file) and read by the others."""
    base = tmp_path_factory.getbasetemp()
    # under xdist each worker's base is <session>/popen-gwN: the session's folder is its parent
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared-xdg-cache"
    shared.mkdir(exist_ok=True)
    return shared


@pytest.fixture(scope="session")
def tiny_gan_checkpoint(tmp_path_factory) -> Path:
    """last.ckpt of a tiny GAN trained 4 steps on tiny MNIST look-alikes (shared, read-only)."""
    from genkit.commands.train import train

    tmp = tmp_path_factory.mktemp("gan")
    root = tmp / "data"
    write_tiny_image_set(root / "mnist")
    train(make_cfg(tmp, f"data.root={root}", *TINY_IMAGE_RUN))
    return tmp / "outputs" / "run" / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="session")
def tiny_gpt_checkpoint(tmp_path_factory) -> Path:
    """last.ckpt of a one-layer GPT trained 2 steps on a small corpus (shared, read-only)."""
    from genkit.commands.train import train

    tmp = tmp_path_factory.mktemp("gpt")
    train(make_cfg(tmp, *tiny_text_run(tmp), "trainer.max_steps=2", "trainer.max_epochs=1"))
    return tmp / "outputs" / "run" / "checkpoints" / "last.ckpt"


def _tiny_diffusion_checkpoint(tmp_path_factory, name: str, *overrides: str) -> Path:
    """last.ckpt of a tiny diffusion model (4 steps on tiny MNIST look-alikes) with `overrides`."""
    from genkit.commands.train import train

    tmp = tmp_path_factory.mktemp(name)
    root = tmp / "data"
    write_tiny_image_set(root / "mnist")
    common = ["model=diffusion", "model.net.base=8", "model.sample_steps=2"]
    train(make_cfg(tmp, f"data.root={root}", *TINY_IMAGE_RUN, *common, *overrides))
    return tmp / "outputs" / "run" / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="session")
def tiny_cdiffusion_checkpoint(tmp_path_factory) -> Path:
    """A tiny class-conditional diffusion model (the default denoiser)."""
    return _tiny_diffusion_checkpoint(tmp_path_factory, "cdiffusion", "model.conditional=true")


@pytest.fixture(scope="session")
def tiny_genkit_unet_checkpoint(tmp_path_factory) -> Path:
    """A tiny diffusion model with genkit's own U-Net (model/denoiser@model.net=unet)."""
    return _tiny_diffusion_checkpoint(tmp_path_factory, "unet", "model/denoiser@model.net=unet")


@pytest.fixture
def server(tmp_path):
    """Serves tmp_path/served over HTTP on a free loopback port."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.log_message = lambda *a: None
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
