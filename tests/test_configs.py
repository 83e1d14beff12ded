"""Every config group option composes, and every supported model x data pair instantiates."""

import pytest
from hydra.utils import instantiate

from genkit.build import build
from genkit.config import CONFIG_DIR
from tests.helpers import make_cfg

IMAGE_DATA = ["mnist", "fashion_mnist"]
PAIRS = [("gan", d) for d in IMAGE_DATA]


def options(group):
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("model,data", PAIRS)
def test_pairs_instantiate(tmp_path, tiny_data_root, model, data):
    cfg = make_cfg(tmp_path, f"model={model}", f"data={data}", f"data.root={tiny_data_root}")
    parts = build(cfg)
    assert parts.trainer is not None and parts.model is not None


@pytest.mark.parametrize("group", ["trainer", "logger", "callbacks", "debug", "experiment", "launcher"])
def test_every_option_composes(tmp_path, group):
    for option in options(group):
        cfg = make_cfg(tmp_path, f"{group}={option}")
        if group == "trainer":
            kwargs = {k: v for k, v in cfg.trainer.items() if k != "compile"}
            assert kwargs["_target_"] == "lightning.pytorch.Trainer"
        if group in ("logger", "callbacks") and cfg.get(group):
            for name, node in cfg[group].items():
                if node is not None and group == "logger" and name != "wandb":
                    instantiate(node)


def test_cpu_trainer_is_32_bit_and_gpu_is_bf16(tmp_path):
    assert make_cfg(tmp_path, "trainer=cpu").trainer.precision == "32-true"
    assert make_cfg(tmp_path, "trainer=gpu").trainer.precision == "bf16-mixed"


def test_run_names_cannot_collide(tmp_path):
    cfg = make_cfg(tmp_path)
    assert cfg.run_name == "gan-mnist"
    assert make_cfg(tmp_path, "experiment=gan_mnist").run_name == "gan_mnist"
