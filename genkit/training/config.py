"""Composing genkit's configs: the resolvers they use, and compose_config for scripts and tests.

The resolvers reach into data sets and checkpoints (a folder's class names, a pretrained
network's sizes), so they live here, above both; genkit.config_files holds the folder itself."""

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from genkit.config_files import CONFIG_DIR
from genkit.errors import GenkitError


def _auto_precision(accelerator: str = "auto") -> str:
    from genkit.runtime import precision_for  # imports torch: only when a config asks

    return precision_for(accelerator)


def _wandb_offline() -> bool:
    """Log offline unless the user has wandb credentials, so wandb works without an account."""
    if os.environ.get("WANDB_MODE") in ("offline", "disabled"):
        return True
    if os.environ.get("WANDB_API_KEY"):
        return False
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return not (netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore"))


def _by_device(accelerator: str, on_gpu, on_cpu):
    """`${by_device:${trainer.accelerator},<GPU value>,<CPU value>}`: a default that depends on
    where the run trains (accelerator auto: a GPU when one is there)."""
    from genkit.runtime import uses_cuda  # imports torch: only when a config asks

    return on_gpu if uses_cuda(accelerator) else on_cpu


def _family(target: str) -> str:
    """`genkit.models.gan.GAN` -> `gan`: the model family in run names (resolvable in sweeps too,
    where Hydra's own ${hydra:runtime.choices...} is not yet set)."""
    return target.rsplit(".", 2)[-2]


def _conditional_classes(conditional: bool, num_classes: int | None) -> int:
    """The class count a network conditions on: the data's when the model is conditional, else 0
    (so unconditional networks, and their checkpoints, keep their shapes)."""
    return int(num_classes or 0) if conditional else 0


def _required(key: str, what: str):
    """`${required:model.init_from,<what>}`: a recipe's value that the user must give (Hydra's
    `???` cannot say this: merged over a default, it leaves the default in place)."""
    raise GenkitError(f"{key} has no value, and this recipe needs one: pass {key}=<{what}>.")


def _folder_classes(path: str) -> list[str]:
    """`${folder_classes:${data.path}}`: the class names of a folder of pictures (its sorted class
    sub-folders, else its own name), read from the names alone when the config is composed, so that
    models size their class embeddings from them."""
    from genkit.data.image_folder import folder_classes  # imports torch: only when a config asks

    return folder_classes(path)


def _shards(path, key: str, cache_dir: str | None = None):
    """`${shards:${data.path},<key>}`: a value the shards `genkit prepare` wrote describe (their
    vocabulary size, picture size, classes), read from the first shard folder's genkit-shards.json
    when the config is composed, so that models size themselves from the data they will read
    (a remote folder's description is kept in data.cache_dir, the third argument)."""
    from genkit.data.shards import read_meta, source_paths

    value = read_meta(source_paths(_container(path))[0], cache_dir=cache_dir)[key]
    return OmegaConf.create(value) if isinstance(value, (list, dict)) else value


def user_config_args(hydra_cfg) -> list[str]:
    """The user's own config folders of a running Hydra job, as command-line arguments (a
    relaunched rank or a printed resume command must find their families and data sets too)."""
    args = []
    for source in hydra_cfg.runtime.config_sources:
        if source.provider == "command-line" and source.schema == "file":
            args += ["--config-dir", source.path]
    return args + [o for o in hydra_cfg.overrides.hydra if o.lstrip("+").startswith("hydra.searchpath=")]


def _pretrained(name_or_path: str | None, key: str, default):
    """`${pretrained:${model.init_from},<size>,<default>}`: a size of the starting network."""
    from genkit.checkpoints.hub import pretrained_size  # imports torch: only when a config asks

    return pretrained_size(name_or_path, key, default)


def _hf_architecture(init_from: str | None, architecture):
    """`${hf_architecture:${model.init_from},${.architecture}}`: the config.json of a network that
    transformers builds (model/lm_net@model.net=hf), resolved into the run's config."""
    from genkit.checkpoints.hub import architecture_config  # imports torch: only when a config asks

    # a node, not a dict: OmegaConf prints and merges what a resolver returns only as a node
    return OmegaConf.create(architecture_config(init_from, None if architecture is None else _container(architecture)))


def _container(node):
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def register_resolvers() -> None:
    """The `${name:...}` resolvers of genkit's configs. Each entry point calls it (genkit.cli's
    main and its jobs, compose_config); importing this module registers nothing. Twice is harmless."""
    resolvers = {
        "auto_precision": _auto_precision,
        "wandb_offline": _wandb_offline,
        "pretrained": _pretrained,
        "hf_architecture": _hf_architecture,
        "family": _family,
        "conditional_classes": _conditional_classes,
        "required": _required,
        "by_device": _by_device,
        "folder_classes": _folder_classes,
        "shards": _shards,
        # `${len:${data.class_names}}`: a list's length, e.g. a data set's class count
        "len": len,
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


def compose_config(config_name: str, overrides: list[str], run_dir: Path) -> DictConfig:
    """A config composed as the CLI composes it, outside a Hydra app (scripts, tests, notebooks),
    with its run directory at run_dir/outputs/run."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
    HydraConfig().set_config(cfg)  # for ${hydra:...} interpolations
    with open_dict(cfg):
        cfg.paths.log_dir = str(run_dir / "outputs")
        cfg.paths.output_dir = str(run_dir / "outputs" / "run")
        del cfg["hydra"]
    return cfg
