import pytest
import torch

from genkit.commands.train import train
from genkit.models.vae import binarize
from genkit.training.build import build_model
from tests.helpers import TINY_IMAGE_RUN, make_cfg


@pytest.fixture
def vae(tmp_path):
    torch.manual_seed(0)
    return build_model(make_cfg(tmp_path, "model=vae", "model.encoder.latent_dim=8")).eval()


def test_vae_trains_and_reports_nats(tmp_path, tiny_data_root):
    cfg = make_cfg(
        tmp_path,
        "model=vae",
        f"data.root={tiny_data_root}",
        *TINY_IMAGE_RUN,
        "test=true",
        "model.test_nll_samples=16",
        "model.kl_warmup_steps=10",
    )
    metrics = train(cfg)
    run = tmp_path / "outputs" / "run"
    assert (run / "checkpoints" / "last.ckpt").is_file() and list((run / "samples").glob("*.png"))
    assert metrics["test/nll"] > 0 and metrics["test/elbo"] < 0
    assert metrics["test/bpd"] == pytest.approx(metrics["test/nll"] / (784 * torch.log(torch.tensor(2.0)).item()))


@pytest.mark.parametrize("mode,n", [("prior", 6), ("reconstruct", 8), ("interpolate", 16)])
def test_sample_modes_shapes_and_range(vae, mode, n):
    images = torch.rand(16, 1, 28, 28) * 2 - 1
    out = vae.sample(n, mode=mode, images=images, generator=torch.Generator().manual_seed(0))
    assert out.shape == (n, 1, 28, 28)
    assert out.min() >= -1 and out.max() <= 1
    if mode == "reconstruct":
        assert torch.equal(out[0::2], images[: n // 2])  # originals beside reconstructions


@pytest.mark.slow
def test_importance_sampled_nll_is_tighter_and_converges(vae):
    torch.manual_seed(1)
    x = binarize((torch.rand(32, 1, 1, 28) > 0.5).float().expand(32, 1, 28, 28) * 2 - 1)  # striped images
    # fit the batch briefly, so the decoder depends on z and the bounds differ measurably
    opt = torch.optim.Adam(vae.parameters(), lr=1e-3)
    for _ in range(150):
        loss = -vae.elbo(x)[0].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        neg_elbo = -torch.stack([vae.elbo(x)[0] for _ in range(100)]).mean()
        nll = {k: vae.importance_nll(x, k).mean() for k in (10, 100, 500, 1000)}
    # a tighter bound than the ELBO, tighter with more samples (Burda et al. 2016, theorem 1)
    assert nll[10] < neg_elbo
    assert nll[10] > nll[100] > nll[1000]
    # and the estimate settles as k grows
    assert abs(nll[1000] - nll[500]) < 0.5 * abs(nll[100] - nll[500])
