"""The options of `genkit sample` and `genkit eval`, checked once where they enter.

Each option has one rule (its type and range); a key that no command knows (a typo such as
`+temprature=0.5`) and an option that the checkpoint's family does not take (`prompt=` for a
GAN) are refused, each with one paragraph that names the key.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from genkit.config_files import CONFIG_DIR
from genkit.errors import GenkitError


def whole_number(low: int) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low), f"a whole number of at least {low}"


def _number(test: Callable[[float], bool], words: str) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: isinstance(v, int | float) and not isinstance(v, bool) and test(v)), words


def _one_of(*choices: str) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v in choices), f"one of {', '.join(choices)}"


# option -> (test, what it must be); None passes where the config's default is null
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "n": whole_number(1),
    "seed": whole_number(0),
    "max_new_tokens": whole_number(1),
    "temperature": _number(lambda v: v >= 0, "a number of at least 0 (0 picks the likeliest token)"),
    "top_k": whole_number(1),
    "top_p": _number(lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "mode": _one_of("prior", "reconstruct", "interpolate"),
    "steps": whole_number(1),
    "sampler": _one_of("ddim", "ddpm"),
    "eta": _number(lambda v: v >= 0, "a number of at least 0"),
    "which": _one_of("best", "last"),
    "n_samples": whole_number(1),
    "batch_size": whole_number(1),
    "classifier_epochs": whole_number(1),
    "merge": (lambda v: isinstance(v, bool), "true or false"),
    "real": (lambda v: isinstance(v, bool), "true or false"),
    "use_cache": (lambda v: isinstance(v, bool), "true or false"),
    "inception": (lambda v: v in (True, False, "auto"), "auto, true or false"),
    "guidance": _number(lambda v: v >= 0, "a number of at least 0 (0: no classifier-free guidance)"),
    "label": (
        lambda v: isinstance(v, int | str) and not isinstance(v, bool),
        "one class: its number or its name, e.g. label=7 or label=sneaker",
    ),
    "labels": (
        lambda v: v == "all" or (isinstance(v, Sequence) and not isinstance(v, str) and len(v) > 0),
        "all or a list of classes, e.g. labels=all or labels=[3,7]",
    ),
}


def known_keys(command: str) -> set[str]:
    """The top-level keys of configs/<command>.yaml and the groups it composes."""
    cfg = OmegaConf.load(CONFIG_DIR / f"{command}.yaml")
    entries = OmegaConf.to_container(cfg.defaults)
    groups = {next(iter(d)) if isinstance(d, dict) else d for d in entries}
    return {k for k in cfg if k != "defaults"} | {g for g in groups if not g.startswith(("override ", "_self_"))}


def check_options(command: str, cfg: DictConfig) -> None:
    unknown = sorted(set(cfg) - known_keys(command) - {"hydra"})
    if unknown:
        options = ", ".join(sorted(known_keys(command) - {"paths", "hydra"}))
        raise GenkitError(f"`genkit {command}` has no option {unknown[0]!r}. Its options: {options}.")
    for key, (test, words) in RULES.items():
        if key in cfg and cfg[key] is not None and not test(cfg[key]):
            raise GenkitError(f"{key}={cfg[key]!r} is not valid for `genkit {command}`: {key} must be {words}.")


def check_family_options(
    command: str,
    options: Mapping[str, Any],
    taken: Iterable[str],
    family: str,
    reasons: Mapping[str, str] | None = None,
) -> None:
    """Options set to something other than their default in configs/<command>.yaml must be ones
    the family (or its data) takes; `reasons` say why this model ignores some of them."""
    defaults = OmegaConf.load(CONFIG_DIR / f"{command}.yaml")
    taken = set(taken)
    for key, value in options.items():
        if key not in taken and value != defaults.get(key):
            if reasons and key in reasons:
                raise GenkitError(f"This {family} cannot use {key}={value!r}: {reasons[key]}.")
            raise GenkitError(
                f"{family} takes no `{key}` option (it takes {', '.join(sorted(taken)) or 'none'}); "
                f"drop {key}={value!r}."
            )
