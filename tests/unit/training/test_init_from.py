"""`model.init_from=<genkit run>`: a new run starts from another run's weights, for every image
family; shapes that do not fit are one paragraph, or skipped and listed with init_strict=false."""

import pytest
import torch

from genkit.checkpoints.starting_weights import starting_checkpoint
from genkit.errors import GenkitError
from genkit.training.build import build_model
from genkit.training.restore import load_model
from tests.helpers import TINY_IMAGE_RUN, cli_in_process, make_cfg

FAMILIES = {
    "gan": ("model=gan",),
    "vae": ("model=vae", "model.test_nll_samples=2"),
    "diffusion": ("model=diffusion", "model.net.base=8", "model.sample_steps=2"),
}


def train_source(tmp_path, root, *overrides):
    from genkit.commands.train import train

    train(make_cfg(tmp_path / "source", f"data.root={root}", *TINY_IMAGE_RUN, *overrides))
    return tmp_path / "source" / "outputs" / "run"


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_new_run_starts_from_the_source_weights(tmp_path, tiny_data_root, family):
    source = train_source(tmp_path, tiny_data_root, *FAMILIES[family])
    # a run directory starts from its best.ckpt when it has one, else last.ckpt
    expected = "last.ckpt" if family == "gan" else "best.ckpt"
    assert starting_checkpoint(source) == source / "checkpoints" / expected
    trained, _, _ = load_model(starting_checkpoint(source), data_root=str(tiny_data_root))
    cfg = make_cfg(
        tmp_path / "new", f"data.root={tiny_data_root}", *TINY_IMAGE_RUN, *FAMILIES[family], f"model.init_from={source}"
    )
    started = build_model(cfg).eval()
    for (name, a), (_, b) in zip(trained.state_dict().items(), started.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    # the same weights give the same samples from the same noise, and the same first loss
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(trained.sample(4, generator=g()), started.sample(4, generator=g()))
    fresh = build_model(
        make_cfg(tmp_path / "fresh", f"data.root={tiny_data_root}", *TINY_IMAGE_RUN, *FAMILIES[family])
    ).eval()
    assert not torch.equal(trained.sample(4, generator=g()), fresh.sample(4, generator=g()))


@pytest.mark.slow
def test_first_training_loss_equals_the_source_models_loss_on_the_same_batch(tmp_path, tiny_data_root):
    source = train_source(tmp_path, tiny_data_root, *FAMILIES["diffusion"])
    trained, datamodule, _ = load_model(starting_checkpoint(source), data_root=str(tiny_data_root))
    cfg = make_cfg(
        tmp_path / "new",
        f"data.root={tiny_data_root}",
        *TINY_IMAGE_RUN,
        *FAMILIES["diffusion"],
        f"model.init_from={source}",
    )
    started = build_model(cfg)
    datamodule.setup("fit")
    x = datamodule.sample_images(8)
    losses = []
    for model in (trained.train(), started.train()):
        torch.manual_seed(0)  # the same dropout masks
        losses.append(model.process(x, generator=torch.Generator().manual_seed(3)))
    assert torch.equal(*losses)


@pytest.mark.slow
def test_a_shape_mismatch_names_the_parameter_or_is_skipped_when_not_strict(tmp_path, tiny_data_root, caplog):
    source = train_source(tmp_path, tiny_data_root, "model=gan")
    conditional = (
        f"data.root={tiny_data_root}",
        *TINY_IMAGE_RUN,
        "model=gan",
        "model.conditional=true",
        f"model.init_from={source}",
    )
    with pytest.raises(GenkitError) as err:
        build_model(make_cfg(tmp_path / "strict", *conditional))
    assert "generator.net.0.weight: (6272, 64) there, (6272, 74) here" in str(err.value)
    assert "model.init_strict=false" in str(err.value)
    with caplog.at_level("INFO", logger="genkit"):
        model = build_model(make_cfg(tmp_path / "loose", *conditional, "model.init_strict=false"))
    assert "generator.net.0.weight" in caplog.text and "discriminator.projection.embed.weight" in caplog.text
    trained, _, _ = load_model(source / "checkpoints" / "last.ckpt", data_root=str(tiny_data_root))
    # what matched was loaded
    assert torch.equal(model.discriminator.net[0].weight, trained.discriminator.net[0].weight)


@pytest.mark.slow
def test_training_from_a_run_through_the_cli_records_where_it_started(tmp_path, tiny_data_root):
    source = train_source(tmp_path, tiny_data_root, *FAMILIES["vae"])
    run = tmp_path / "finetuned"
    out = cli_in_process(
        "train", *TINY_IMAGE_RUN, *FAMILIES["vae"], f"model.init_from={source}", f"hydra.run.dir={run}",
        cwd=tmp_path, env={"GENKIT_DATA_DIR": str(tiny_data_root)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["genkit"]["config"]["model"]["init_from"] == str(source)
    assert ckpt["global_step"] == 4  # a new run: its own steps, not the source's
