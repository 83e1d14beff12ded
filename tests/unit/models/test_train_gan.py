import pytest
import torch

from genkit.checkpoints.files import config_of, load_checkpoint
from genkit.commands.train import train
from tests.helpers import SHARED_DATA, TINY_IMAGE_RUN, make_cfg, needs_shared


@pytest.mark.parametrize("loss", ["non_saturating", "hinge"])
def test_gan_trains_on_tiny_data(tmp_path, tiny_data_root, loss):
    cfg = make_cfg(tmp_path, f"data.root={tiny_data_root}", f"model.loss={loss}", *TINY_IMAGE_RUN)
    metrics = train(cfg)
    run = tmp_path / "outputs" / "run"
    ckpt = load_checkpoint(run / "checkpoints" / "last.ckpt")
    # one global step per batch, although the GAN steps two optimizers per batch
    assert ckpt["global_step"] == 4
    assert config_of(ckpt, "last.ckpt").model.loss == loss
    assert list((run / "samples").glob("*.png"))
    assert (run / "metrics.csv").is_file()
    for key in ("train/d_loss", "train/g_loss", "train/d_real", "train/d_fake"):
        assert torch.isfinite(torch.tensor(metrics[key]))


def test_gan_sample_shapes_and_range(tmp_path):
    cfg = make_cfg(tmp_path)
    from genkit.training.build import build_model

    model = build_model(cfg).eval()
    g = torch.Generator().manual_seed(0)
    x = model.sample(5, generator=g)
    assert x.shape == (5, 1, 28, 28)
    assert x.min() >= -1 and x.max() <= 1
    assert torch.equal(x, model.sample(5, generator=torch.Generator().manual_seed(0)))


def test_fashion_mnist_trains(tmp_path, tiny_data_root):
    cfg = make_cfg(tmp_path, "data=fashion_mnist", f"data.root={tiny_data_root}", *TINY_IMAGE_RUN)
    train(cfg)
    assert (tmp_path / "outputs" / "run" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow
@needs_shared("mnist")
def test_gan_trains_on_shared_mnist(tmp_path):
    cfg = make_cfg(
        tmp_path,
        f"data.root={SHARED_DATA}",
        "trainer.max_steps=20",
        "trainer.val_check_interval=10",
        "trainer.limit_val_batches=1",
        "trainer.accelerator=cpu",
        "trainer.precision=32-true",
    )
    metrics = train(cfg)
    samples = sorted(p.name for p in (tmp_path / "outputs" / "run" / "samples").glob("*.png"))
    # one grid per validation (steps 10 and 20), none twice for the same step
    assert samples == ["step_0000010.png", "step_0000020.png"]
    assert "val/d_loss" in metrics
