"""Every config group option composes, and every supported model x data pair instantiates."""

import pytest
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf
from PIL import Image

from genkit.config_files import CONFIG_DIR
from genkit.data.shards import write_meta
from genkit.training.build import build, build_model, check_run_options
from tests.helpers import make_cfg


def options(group):
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def modality(group: str, option: str) -> str:
    """What a model generates or a data set holds, from the class its config names."""
    cfg = OmegaConf.load(CONFIG_DIR / group / f"{option}.yaml")
    while "_target_" not in cfg:  # a config that extends another (fashion_mnist extends mnist)
        cfg = OmegaConf.load(CONFIG_DIR / group / f"{cfg.defaults[0]}.yaml")
    return get_class(cfg._target_).modality


# what picture shards' description tells a config (genkit.data.picture_shards.write_shards)
IMAGE_SIZES = {"image_size": 32, "channels": 3, "num_classes": 2, "class_names": ["a", "b"], "classifier_epochs": 4}

# what each kind of shards' description tells a config (genkit.data.*_shards.write_shards)
SHARD_SIZES = {
    "text_shards": ("tokens", {"vocab_size": 65, "token_unit": "char"}),
    "image_shards": ("pictures", IMAGE_SIZES),
    "pairs_shards": ("pairs", {"vocab_size": 65, "block_size": 32, "token_unit": "char", "separator": " =>",
                               "long_prompts": "error", "prompt_key": "prompt", "completion_key": "completion"}),
}  # fmt: skip

# every model with every data set of its modality, read from the config folders
PAIRS = [(m, d) for m in options("model") for d in options("data") if modality("model", m) == modality("data", d)]


def test_every_model_and_data_option_has_a_partner():
    assert {m for m, _ in PAIRS} == set(options("model"))
    assert {d for _, d in PAIRS} == set(options("data"))
    assert ("gpt", "ptb") in PAIRS and ("gan", "mnist") in PAIRS and ("gpt", "mnist") not in PAIRS


@pytest.mark.parametrize("model,data", PAIRS)
def test_pairs_instantiate(tmp_path, tiny_data_root, model, data):
    overrides = [f"model={model}", f"data={data}"]
    if data == "image_folder":  # the user's own folder: one picture is enough to build on
        Image.new("RGB", (8, 8)).save(tmp_path / "picture.png")
    if data == "hf_text":  # names the user's dataset; building reads nothing yet
        overrides.append(f"data.dataset={tmp_path}")
    elif data.endswith("_shards"):  # the config reads the shards' description; building reads nothing more
        kind, sizes = SHARD_SIZES[data]
        write_meta(tmp_path, {"kind": kind, "data": "made-up", **sizes})
        overrides.append(f"data.path={tmp_path}")
    else:
        overrides.append(
            f"data.path={tmp_path}" if data in ("text", "image_folder", "pairs") else f"data.root={tiny_data_root}"
        )
    parts = build(make_cfg(tmp_path, *overrides))
    assert parts.trainer is not None and parts.model is not None and parts.datamodule is not None


@pytest.mark.parametrize("group", ["trainer", "logger", "callbacks", "debug", "launcher"])
def test_every_option_composes(tmp_path, group):
    for option in options(group):
        cfg = make_cfg(tmp_path, f"{group}={option}")
        check_run_options(cfg)  # every component's keys are arguments of its class
        if group == "logger":
            for name, node in (cfg.logger or {}).items():
                if name != "wandb":  # wandb's offline run would start a background service
                    instantiate(node)


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_composes_and_builds_its_model(tmp_path, experiment):
    cfg = make_cfg(tmp_path, f"experiment={experiment}")
    assert cfg.run_name == experiment
    check_run_options(cfg)  # every component's keys are arguments of its class
    try:
        build_model(cfg)
    except Exception as err:  # a recipe that starts from a run names it; built here from scratch
        if "has no value, and this recipe needs one: pass model.init_from" not in str(err):
            raise
        build_model(make_cfg(tmp_path, f"experiment={experiment}", "model.init_from=null"))


def test_the_cpu_allocator_keeps_freed_memory():
    import sys

    from genkit.training.cpu_allocator import tune_cpu_allocator

    assert tune_cpu_allocator() is sys.platform.startswith("linux")


def test_model_gpt_is_the_old_name_of_the_language_model_family(tmp_path):
    """Commands, sweeps and configs written before the rename keep working: `model=gpt` composes
    model=lm's config, and the old class path builds the same class."""
    from genkit.models.gpt import GPT
    from genkit.models.lm import LanguageModel

    old, new = make_cfg(tmp_path, "model=gpt", "data=ptb"), make_cfg(tmp_path, "model=lm", "data=ptb")
    assert old.model == new.model and old.run_name == new.run_name == "lm-ptb"
    assert GPT is LanguageModel


def test_default_run_name_is_model_and_data(tmp_path):
    assert make_cfg(tmp_path).run_name == "gan-mnist"
    assert make_cfg(tmp_path, "model=lm", "data=ptb").run_name == "lm-ptb"
