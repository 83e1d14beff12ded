"""Each family's networks are config groups under configs/model/<group>/, swappable from the
command line: `genkit train model=gan model/generator=mlp model/discriminator=mlp`."""

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_class

from genkit.config_files import CONFIG_DIR
from genkit.models.nets import mlp
from genkit.training.build import build_model
from tests.helpers import TINY_IMAGE_RUN, make_cfg, run_cli, write_tiny_hf_model

FAMILIES = sorted(p.stem for p in (CONFIG_DIR / "model").glob("*.yaml"))
NETWORK_GROUPS = sorted(p.name for p in (CONFIG_DIR / "model").iterdir() if p.is_dir())
# a data set each family trains on, so that its networks' ${data...} interpolations resolve
DATA = {"gan": "mnist", "vae": "mnist", "diffusion": "mnist", "lm": "tinyshakespeare", "gpt": "tinyshakespeare"}
MLP_GAN = ("model=gan", "model/generator=mlp", "model/discriminator=mlp")


def network_choices() -> dict[str, tuple[str, str]]:
    """Network group -> (family, the override key that picks it), from each family's defaults.

    The key is `model/<group>` for a network at its group's own package (model.generator) and
    `model/<group>@model.net` for one placed at model.net (Hydra names the package then)."""
    found = {}
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        for family in FAMILIES:
            cfg = compose("train", overrides=[f"model={family}"], return_hydra_config=True)
            for key in cfg.hydra.runtime.choices:
                if key.startswith("model/"):
                    found[key.removeprefix("model/").partition("@")[0]] = (family, key)
    GlobalHydra.instance().clear()
    return found


def test_network_folders_are_groups_not_models():
    assert FAMILIES == ["diffusion", "gan", "gpt", "lm", "vae"]  # gpt: the language models' old name
    choices = network_choices()
    # every folder is picked by some family's defaults list, and only folders are
    assert sorted(choices) == NETWORK_GROUPS
    assert choices == {
        "decoder": ("vae", "model/decoder"),
        "denoiser": ("diffusion", "model/denoiser@model.net"),
        "discriminator": ("gan", "model/discriminator"),
        "encoder": ("vae", "model/encoder"),
        "generator": ("gan", "model/generator"),
        "lm_net": ("lm", "model/lm_net@model.net"),
    }


@pytest.mark.parametrize("group", NETWORK_GROUPS)
def test_every_network_option_composes_and_builds(tmp_path, group):
    family, key = network_choices()[group]
    node = "net" if "@" in key else group
    for option in sorted(p.stem for p in (CONFIG_DIR / "model" / group).glob("*.yaml")):
        # a Hugging Face network takes its architecture from a checkpoint folder (a tiny one here)
        given = [f"model.init_from={write_tiny_hf_model(tmp_path / 'hf')}"] if option == "hf" else []
        cfg = make_cfg(tmp_path, f"model={family}", f"data={DATA[family]}", f"{key}={option}", *given)
        network = get_class(cfg.model[node]._target_)
        assert any(isinstance(module, network) for module in build_model(cfg).modules())


def test_mlp_gan_builds_and_samples_images(tmp_path):
    model = build_model(make_cfg(tmp_path, *MLP_GAN))
    assert isinstance(model.generator, mlp.Generator)
    assert isinstance(model.discriminator, mlp.Discriminator)
    images = model.sample(5, generator=torch.Generator().manual_seed(0))
    assert images.shape == (5, 1, 28, 28)
    assert images.min() >= -1 and images.max() <= 1
    assert model.discriminator(images).shape == (5,)


def test_mlp_gan_experiment_picks_both_mlp_networks(tmp_path):
    model = make_cfg(tmp_path, "experiment=gan_mlp_mnist").model
    assert model.generator._target_ == "genkit.models.nets.mlp.Generator"
    assert model.discriminator._target_ == "genkit.models.nets.mlp.Discriminator"


@pytest.mark.slow
def test_mlp_gan_trains_through_the_cli(tmp_path, tiny_data_root):
    run = tmp_path / "run"
    out = run_cli(
        "train", *MLP_GAN, f"data.root={tiny_data_root}", *TINY_IMAGE_RUN, f"hydra.run.dir={run}", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (run / "checkpoints" / "last.ckpt").is_file()


def test_unknown_network_is_short_and_lists_choices(tmp_path):
    out = run_cli("train", "model=gan", "model/generator=nope", cwd=tmp_path)
    assert out.returncode == 2
    message = " ".join((out.stdout + out.stderr).split())
    assert "nope" in message and "dcgan, mlp" in message
    assert len((out.stdout + out.stderr).strip().splitlines()) <= 5
    assert "Traceback" not in message
