"""Class-conditional generation: labels reach the networks, `sample` honours them, guidance 0 is
the unguided path, grids have one row per class, eval scores class_acc, and unconditional
checkpoints keep loading."""

import json
from functools import partial

import pytest
import torch
from PIL import Image

from genkit.data.images import ImageDataModule, save_grid
from genkit.errors import GenkitError
from genkit.metrics.image_scores import class_accuracy
from genkit.models.diffusion import Diffusion, guided
from genkit.models.nets import conv_vae, dcgan, mlp, unet
from genkit.models.optim import build_optimizer
from genkit.models.vae import VAE
from genkit.training.restore import load_model
from tests.helpers import cli_in_process

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def fashion_data(**kwargs) -> ImageDataModule:
    return ImageDataModule(
        name="fashion_mnist", files={}, mirrors=[], root="/nonexistent", class_names=FASHION, **kwargs
    )


# ---- classes by number or name ----------------------------------------------------------------


@pytest.mark.parametrize(
    "value,index", [(7, 7), ("7", 7), ("sneaker", 7), ("Ankle boot", 9), ("ankle_boot", 9), ("t-shirt", 0), ("top", 0)]
)
def test_a_class_is_asked_for_by_number_or_name(value, index):
    assert fashion_data().class_index(value) == index


@pytest.mark.parametrize("value", [10, -1, "boot", "sneakers", True])
def test_an_unknown_class_lists_the_valid_ones(value):
    with pytest.raises(GenkitError) as err:
        fashion_data().class_index(value)
    message = str(err.value)
    assert "0 to 9" in message and "7 (Sneaker)" in message and "9 (Ankle boot)" in message


def test_labels_all_gives_each_class_a_row():
    data = fashion_data()
    labels = data.labels_to_generate(64)
    assert labels.tolist() == [c for c in range(10) for _ in range(7)]  # ceil(64 / 10) per class
    assert data.labels_to_generate(4, label="bag").tolist() == [8] * 4
    assert data.labels_to_generate(4, labels=["bag", 1]).tolist() == [8, 8, 1, 1]
    with pytest.raises(GenkitError, match="not both"):
        data.labels_to_generate(4, label=1, labels="all")


def test_class_names_must_match_the_class_count():
    with pytest.raises(GenkitError, match="one name per class"):
        fashion_data(num_classes=3)


def test_grid_of_labels_all_has_one_row_per_class(tmp_path):
    labels = torch.arange(10).repeat_interleave(3)
    path = save_grid(torch.zeros(30, 1, 28, 28), tmp_path / "grid.png", labels)
    width, height = Image.open(path).size
    assert (width, height) == (3 * 30 + 2, 10 * 30 + 2)  # 3 columns, 10 rows (28 px + 2 padding)
    square = save_grid(torch.zeros(30, 1, 28, 28), tmp_path / "square.png", torch.full((30,), 4))
    assert Image.open(square).size == (6 * 30 + 2, 5 * 30 + 2)


def test_class_accuracy_overall_and_per_class():
    asked = torch.tensor([0, 0, 1, 1])
    scores = class_accuracy(asked, torch.tensor([0, 1, 1, 1]), ["zero", "one"])
    assert scores["class_acc"] == 0.75 and scores["class_acc_per_class"] == {"zero": 0.5, "one": 1.0}


# ---- the networks and models honour labels ------------------------------------------------------


@pytest.mark.parametrize("module", [dcgan, mlp])
def test_gan_networks_condition_on_labels(module):
    torch.manual_seed(0)
    g = module.Generator(latent_dim=8, width=16, num_classes=10).eval()
    d = module.Discriminator(width=16, num_classes=10).eval()
    z = torch.randn(4, 8)
    a, b = g(z, torch.zeros(4, dtype=torch.long)), g(z, torch.ones(4, dtype=torch.long))
    assert a.shape == (4, 1, 28, 28) and not torch.allclose(a, b)
    with torch.no_grad():
        d.projection.embed.weight.normal_()  # the projection starts near zero
    assert not torch.allclose(d(a, torch.zeros(4, dtype=torch.long)), d(a, torch.ones(4, dtype=torch.long)))
    with pytest.raises(ValueError, match="pass labels"):
        g(z)


def test_unconditional_networks_keep_their_parameter_names_and_shapes():
    # checkpoints written before conditioning existed hold exactly these tensors
    assert {k: tuple(v.shape) for k, v in dcgan.Generator(latent_dim=64).state_dict().items()}["net.0.weight"] == (
        6272,
        64,
    )
    assert not any("projection" in k for k in dcgan.Discriminator().state_dict())
    assert not any("class_embed" in k for k in unet.UNet(base=8).state_dict())
    assert tuple(conv_vae.Encoder().state_dict()["net.5.weight"].shape) == (256, 64 * 7 * 7)


def test_conditional_vae_memorising_one_image_per_class_draws_that_class():
    """Ten images, one per class: a conditional VAE that learns them must return, for any z, the
    image of the class it was asked for."""
    torch.manual_seed(0)
    images = (torch.rand(10, 1, 8, 8) > 0.5).float() * 2 - 1
    labels = torch.arange(10)
    enc = conv_vae.Encoder(image_size=8, latent_dim=4, width=8, num_classes=10)
    dec = conv_vae.Decoder(image_size=8, latent_dim=4, width=8, num_classes=10)
    vae = VAE(enc, dec, optimizer=partial(torch.optim.Adam, lr=3e-3), conditional=True)
    opt = build_optimizer(vae.optimizer, vae.parameters())
    for _ in range(300):
        _, log_px, kl = vae.elbo((images + 1) / 2, labels)
        loss = -(log_px - kl).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    asked = torch.tensor([3, 7, 7, 0, 9, 5])
    out = vae.sample(len(asked), generator=torch.Generator().manual_seed(1), labels=asked)
    nearest = torch.cdist(out.flatten(1), images.flatten(1)).argmin(1)
    assert nearest.tolist() == asked.tolist()
    # the default is every class in turn
    assert len(vae.sample(20)) == 20


def tiny_cdiffusion(**kwargs) -> Diffusion:
    torch.manual_seed(0)
    net = unet.UNet(base=8, channel_mults=(1, 2), attention_levels=(), num_classes=10)
    return Diffusion(net, optimizer=None, timesteps=50, image_shape=(1, 8, 8), conditional=True, **kwargs).eval()


def test_guidance_zero_is_the_unguided_conditional_path():
    model = tiny_cdiffusion()
    labels = torch.tensor([1, 2, 3])
    guided_0 = model.sample(3, generator=torch.Generator().manual_seed(0), labels=labels, guidance=0, steps=5)
    plain = model.process.ddim_sample(
        partial(model.ema_net, labels=labels), (3, 1, 8, 8), 5, 0.0, torch.Generator().manual_seed(0)
    ).clamp(-1, 1)
    assert torch.equal(guided_0, plain)
    guided_2 = model.sample(3, generator=torch.Generator().manual_seed(0), labels=labels, guidance=2, steps=5)
    assert not torch.allclose(guided_0, guided_2)


def test_guided_prediction_mixes_conditional_and_null_class():
    model = tiny_cdiffusion()
    with torch.no_grad():
        model.ema_net.class_embed.weight.normal_()
    x, t, y = torch.randn(2, 1, 8, 8), torch.tensor([10, 40]), torch.tensor([4, 6])
    with torch.no_grad():
        c, u = model.ema_net(x, t, y), model.ema_net(x, t, torch.full_like(y, 10))
        assert torch.allclose(guided(model.ema_net, x, t, labels=y, guidance=3.0), 4 * c - 3 * u, atol=1e-5)


def test_cond_drop_sends_that_share_of_labels_to_the_null_class():
    model = tiny_cdiffusion(cond_drop=0.25)
    dropped = model._training_labels(torch.zeros(20_000, dtype=torch.long), torch.Generator().manual_seed(0))
    assert abs((dropped == 10).float().mean().item() - 0.25) < 0.01 and set(dropped.tolist()) == {0, 10}


def test_conditional_model_without_labelled_networks_is_refused():
    with pytest.raises(GenkitError, match="model.conditional=true needs class labels"):
        Diffusion(unet.UNet(base=8), optimizer=None, conditional=True)


# ---- through the CLI ----------------------------------------------------------------------------


def sample_ok(tmp_path, *args: str):
    """`genkit sample <args>` that must succeed."""
    out = cli_in_process("sample", *args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    return out


@pytest.mark.slow
def test_sample_by_label_and_all_labels_grid(tmp_path, tiny_cdiffusion_checkpoint):
    ckpt = f"ckpt={tiny_cdiffusion_checkpoint}"
    out = sample_ok(tmp_path, ckpt, "label=7", "n=4", f"out={tmp_path}/seven.png")
    assert "Wrote 4 samples" in out.stdout + out.stderr
    sample_ok(tmp_path, ckpt, "n=20", f"out={tmp_path}/all.png")
    sample_ok(tmp_path, ckpt, "label=3", "guidance=3", "n=2", f"out={tmp_path}/g.png")
    assert Image.open(tmp_path / "all.png").size == (2 * 30 + 2, 10 * 30 + 2)  # labels=all: a row per class
    # the grids written during training draw every class too
    grids = sorted((tiny_cdiffusion_checkpoint.parent.parent / "samples").glob("step_*.png"))
    assert grids and Image.open(grids[-1]).size[1] == 10 * 30 + 2


def test_eval_of_conditional_model_writes_class_acc_and_guidance(tmp_path, tiny_cdiffusion_checkpoint):
    root = tiny_cdiffusion_checkpoint.parents[3] / "data"
    report = tmp_path / "eval.json"
    out = cli_in_process(
        "eval", f"ckpt={tiny_cdiffusion_checkpoint}", "n_samples=40", "batch_size=16", "classifier_epochs=1",
        "guidance=2", f"out={report}", f"data_root={root}",
        cwd=tmp_path, env={"XDG_CACHE_HOME": str(tmp_path / "cache")},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(report.read_text())
    assert result["guidance"] == 2 and 0 <= result["class_acc"] <= 1
    assert sorted(result["class_acc_per_class"]) == [str(i) for i in range(10)]


def test_unconditional_checkpoint_written_before_conditioning_still_loads(tmp_path, tiny_gan_checkpoint):
    """Checkpoints from before conditioning have no `conditional` / `num_classes` in their config."""
    ckpt = torch.load(tiny_gan_checkpoint, map_location="cpu", weights_only=True)
    model_cfg = ckpt["genkit"]["config"]["model"]
    for node in (model_cfg, model_cfg["generator"], model_cfg["discriminator"]):
        node.pop("conditional", None), node.pop("num_classes", None)
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)
    model, _, _ = load_model(old, trusted_targets=[], data_root=str(tiny_gan_checkpoint.parents[3] / "data"))
    assert not model.conditional and model.sample(3).shape == (3, 1, 28, 28)


@pytest.mark.slow
def test_fashion_classes_by_name_through_the_cli(tmp_path, tiny_data_root):
    from genkit.commands.train import train
    from tests.helpers import TINY_IMAGE_RUN, make_cfg

    overrides = ("model=gan", "model.conditional=true", "data=fashion_mnist", f"data.root={tiny_data_root}")
    train(make_cfg(tmp_path, *overrides, *TINY_IMAGE_RUN))
    run = tmp_path / "outputs" / "run"
    common = (f"ckpt={run}", f"data_root={tiny_data_root}")
    sample_ok(tmp_path, *common, "label=sneaker", "n=3", f"out={tmp_path}/sneakers.png")
    sample_ok(tmp_path, *common, "labels=[bag,1]", "n=4", f"out={tmp_path}/two.png")
    assert Image.open(tmp_path / "two.png").size == (2 * 30 + 2, 2 * 30 + 2)  # two rows: bags, trousers
    out = cli_in_process("sample", *common, "label=digit", cwd=tmp_path)
    assert out.returncode == 2 and "7 (Sneaker)" in " ".join(out.stderr.split())


@pytest.mark.slow
@pytest.mark.parametrize("family", ["vae", "gan"])
def test_conditional_vae_and_gan_train_sample_and_eval(tmp_path, tiny_data_root, family):
    from genkit.commands.train import train
    from tests.helpers import TINY_IMAGE_RUN, make_cfg

    extra = ["model.test_nll_samples=4"] if family == "vae" else []
    train(
        make_cfg(
            tmp_path,
            f"model={family}",
            "model.conditional=true",
            f"data.root={tiny_data_root}",
            *TINY_IMAGE_RUN,
            *extra,
        )
    )
    run = tmp_path / "outputs" / "run"
    common = (f"ckpt={run}", f"data_root={tiny_data_root}")
    sample_ok(tmp_path, *common, "labels=all", "n=10", f"out={tmp_path}/all.png")
    assert Image.open(tmp_path / "all.png").size == (30 + 2, 10 * 30 + 2)
    if family == "vae":  # reconstructions and interpolations keep each image's own class
        for mode in ("reconstruct", "interpolate"):
            sample_ok(tmp_path, *common, f"mode={mode}", "n=16", f"out={tmp_path}/{mode}.png")
        out = cli_in_process("sample", *common, "mode=reconstruct", "label=3", cwd=tmp_path)
        assert out.returncode == 2 and "with these options it does not generate from the data's labels" in " ".join(
            out.stderr.split()
        )
    report = tmp_path / "eval.json"
    out = cli_in_process(
        "eval", *common, "n_samples=25", "batch_size=10", "classifier_epochs=1", f"out={report}",
        cwd=tmp_path, env={"XDG_CACHE_HOME": str(tmp_path / "cache")},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(report.read_text())
    assert 0 <= result["class_acc"] <= 1 and "guidance" not in result
    assert len(result["class_acc_per_class"]) == 10  # 25 samples: every class asked for, 2 or 3 times
