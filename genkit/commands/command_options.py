"""Each command's options, made from their one declaration (genkit.options.Option).

A command declares its own options (OPTIONS in its module); the families and data sets declare
theirs (GenerativeModel.sample_options / test_options, GenkitDataModule.input_options). From these
this module makes the config node that configs/<command>.yaml composes (`<command>_options`), the
`--help` text, and the checks with their one-paragraph errors. Which keys are the command's and
which a family's follows from where they are declared: there is no list of exclusions to keep.
"""

import functools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from genkit.config_files import CONFIG_DIR
from genkit.data.base import GenkitDataModule
from genkit.errors import GenkitError
from genkit.models.base import GenerativeModel
from genkit.options import BOOLEAN, MODULE_PREFIXES, Option, one_of
from genkit.runtime import INFERENCE_PRECISIONS

# the options of every command that opens a checkpoint (sample, eval, export)
CHECKPOINT_OPTIONS = {
    "ckpt": Option(
        None, "the checkpoint: a run directory or a .ckpt file (default: the newest run under ./outputs)",
        shown="ckpt=<run dir or .ckpt>",
    ),
    "which": Option(
        None, "in a run directory: best or last (default: best.ckpt when the run has one)", one_of("best", "last")
    ),
    "trusted_targets": Option(
        [], "module prefixes of your own code that a checkpoint may build (a checkpoint's config is data, not code)",
        MODULE_PREFIXES,
    ),
    "data_root": Option(
        "${paths.data_dir}",
        "where this machine keeps data sets ($GENKIT_DATA_DIR, else ~/.cache/genkit/data; never the checkpoint's)",
        shown="data_root=<dir>",
    ),
}  # fmt: skip
# the options of every command that runs a loaded model (sample, eval, serve)
INFERENCE_OPTIONS = {
    "precision": Option(
        "auto",
        "auto (genkit's choice for this device, as training's: bf16 where it is much faster), 32-true or bf16-mixed",
        one_of(*INFERENCE_PRECISIONS),
    ),
}
MERGE = Option(False, "fold LoRA adapters into the weights (a plain model, as fast as one without)", BOOLEAN)
# what register() declared for each command in this process (with the user's config folders)
_REGISTERED: dict[str, dict[str, Option]] = {}

# what a family declares for each command that takes family options
FAMILY_OPTIONS = {
    "sample": lambda cls: cls.sample_options if issubclass(cls, GenerativeModel) else cls.all_input_options(),
    "eval": lambda cls: cls.test_options if issubclass(cls, GenerativeModel) else {},
}


def _classes(config_dirs: Iterable[Path]) -> list[type]:
    """The model and data classes that the model/ and data/ config groups name, in genkit's
    configs and the user's (`--config-dir`): the families a checkpoint can hold."""
    found: dict[str, type] = {}
    for folder in config_dirs:
        for group, base in (("model", GenerativeModel), ("data", GenkitDataModule)):
            for path in sorted((folder / group).glob("*.yaml")):
                target = OmegaConf.load(path).get("_target_")
                if not isinstance(target, str) or target in found:
                    continue
                try:
                    cls = get_class(target)
                except Exception:  # a broken config of the user's: `genkit train` reports it, not this
                    continue
                if isinstance(cls, type) and issubclass(cls, base):
                    found[target] = cls
    return list(found.values())


@functools.cache
def family_options(command: str, config_dirs: tuple[Path, ...] = (CONFIG_DIR,)) -> dict[str, dict[str, Option]]:
    """{family or data class name: its options for this command}."""
    if command not in FAMILY_OPTIONS:
        return {}
    declared: dict[str, dict[str, Option]] = {}
    for cls in _classes(config_dirs):
        options = dict(FAMILY_OPTIONS[command](cls))
        # a subclass that inherits its base's options (ImageFolderDataModule) is not listed again
        if options and options not in declared.values():
            declared[cls.__name__] = options
    return declared


def all_options(command: str, own: Mapping[str, Option], config_dirs: tuple[Path, ...] = (CONFIG_DIR,)) -> dict:
    """The command's own options and every family's, one entry per key. Two families may declare
    the same key (`steps`: the VAE's points per interpolation, diffusion's sampler steps), with
    one default, as the config holds one value."""
    options = dict(own)
    for family, declared in family_options(command, config_dirs).items():
        for key, option in declared.items():
            if key in options and options[key].default != option.default:
                raise ValueError(
                    f"{family} declares {key} with default {option.default!r}, another {options[key].default!r}"
                )
            options.setdefault(key, option)
    return options


def help_text(command: str, description: str, own: Mapping[str, Option], config_dirs=(CONFIG_DIR,)) -> str:
    lines = [f"genkit {command}: {description}.", "", "Options (key=value):"]
    width = 28
    lines += [f"  {option.usage(key):<{width}}{option.help}" for key, option in own.items()]
    families = family_options(command, config_dirs)
    if families:
        lines += ["", "Options of the model families and data sets (each takes only its own):"]
        for family, declared in families.items():
            lines.append(f"  {family}:")
            lines += [f"    {option.usage(key):<{width - 2}}{option.help}" for key, option in declared.items()]
    # Hydra fills the template with string.Template: a literal $ is written $$
    return "\n".join([*(line.replace("$", "$$") for line in lines), "", "${hydra.help.footer}"])


def register(command: str, description: str, own: Mapping[str, Option], config_dirs=(CONFIG_DIR,)) -> None:
    """The `<command>_options` config node: every option at its default, and the help text."""
    options = all_options(command, own, tuple(config_dirs))
    _REGISTERED[command] = options
    node: dict[str, Any] = {key: option.default for key, option in options.items()}
    node["hydra"] = {"help": {"template": help_text(command, description, own, tuple(config_dirs))}}
    ConfigStore.instance().store(name=f"{command}_options", node=node)


@functools.cache
def _groups(command: str) -> frozenset[str]:
    """The config groups configs/<command>.yaml composes (paths, and data for eval's real=true)."""
    entries = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / f"{command}.yaml").defaults)
    names = {next(iter(d)) if isinstance(d, dict) else d for d in entries}
    return frozenset(g for g in names if not g.startswith(("override ", "_self_")) and g != f"{command}_options")


def check_options(command: str, cfg: DictConfig, own: Mapping[str, Option]) -> None:
    """No key that the command and its families do not declare (a typo such as `temprature`), and
    every value within its rule."""
    options = _REGISTERED.get(command) or all_options(command, own)
    unknown = sorted(set(cfg) - set(options) - _groups(command) - {"hydra"})
    if unknown:
        raise GenkitError(
            f"`genkit {command}` has no option {unknown[0]!r}. Its options: {', '.join(sorted(options))}; "
            f"`genkit {command} --help` says what each does."
        )
    for key, option in options.items():
        if key in cfg:
            option.check(key, cfg[key], command)


def check_values(command: str, cfg: DictConfig, own: Mapping[str, Option]) -> None:
    """Each of the command's own options within its rule (for a command whose config is a whole
    training config, `genkit bench`, where other keys are the run's)."""
    for key, option in own.items():
        option.check(key, cfg.get(key), command)


def family_choices(command: str, cfg: DictConfig, own: Mapping[str, Option]) -> dict[str, Any]:
    """The options in cfg that are not the command's own: the family's (and its data's)."""
    not_options = {*own, *_groups(command), "hydra"}
    return {key: value for key, value in cfg.items() if key not in not_options}


def check_family_options(
    command: str,
    options: Mapping[str, Any],
    taken: Iterable[str],
    family: str,
    reasons: Mapping[str, str] | None = None,
) -> None:
    """Options set to something other than their declared default must be ones the family (or
    its data) takes; `reasons` say why this model ignores some of them."""
    defaults = {
        key: option.default for declared in family_options(command).values() for key, option in declared.items()
    }
    taken = set(taken)
    for key, value in options.items():
        if key not in taken and value != defaults.get(key):
            if reasons and key in reasons:
                raise GenkitError(f"This {family} cannot use {key}={value!r}: {reasons[key]}.")
            raise GenkitError(
                f"{family} takes no `{key}` option (it takes {', '.join(sorted(taken)) or 'none'}); "
                f"drop {key}={value!r}."
            )


def check_limits(command: str, cfg: DictConfig, own: Mapping[str, Option], forced: bool) -> None:
    """Values past an option's limit (Option.limit) only with force=true."""
    options = _REGISTERED.get(command) or all_options(command, own)
    for key, option in options.items():
        if key in cfg:
            option.check_limit(key, cfg[key], command, forced)
