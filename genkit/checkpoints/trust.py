"""Loading is not executing: what genkit builds from a config that a checkpoint carries.

A checkpoint may come from a stranger. Its weights load with `weights_only=True`; its config is
rebuilt only from `_target_`s that genkit trusts: its own classes, PyTorch's optimizers and
Lightning's trainer, callbacks and loggers, plus prefixes the user names in `trusted_targets`
(for families of their own). Data files named in it must be plain names under the data root,
downloaded only over https, and a built-in data set's checksums come from genkit's own configs.
"""

import sys
from collections.abc import Iterable, Iterator
from pathlib import PurePosixPath, PureWindowsPath

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from genkit.config_files import CONFIG_DIR
from genkit.errors import GenkitError

TRUSTED_TARGETS = (
    "genkit.",
    "torch.optim.",
    "lightning.pytorch.Trainer",
    "lightning.pytorch.callbacks.",
    "lightning.pytorch.loggers.",
)
# never trusted from a checkpoint, whatever trusted_targets says (beside the standard library and
# builtins): loaders that unpickle or download, and the config machinery that instantiates on its own
NEVER_TRUSTED = ("torch.load", "torch.hub.", "torch.serialization.", "torch.package.", "torch.jit.load",
                 "numpy.load", "dill.", "cloudpickle.", "joblib.", "hydra.utils.", "omegaconf.")  # fmt: skip
# what a trusted_targets prefix must not cover (`o`, `torch.`, `` cover these)
DANGEROUS_EXAMPLES = ("os.", "builtins.", "subprocess.", "sys.", "importlib.", "pickle.", "shutil.", "torch.load")
# the functions among genkit's own config targets (everything else a checkpoint builds is a class)
TRUSTED_FUNCTIONS = ("genkit.callbacks.progress.progress_bar",)
# where classes that checkpoints name moved to (old module prefix -> new): a checkpoint written
# before a move names the old path, and opens as if it named the new one. One row per move.
MOVED_TARGETS = {
    # 2026-12: the CSV logger joined the run's other records in genkit.runs
    "genkit.csv_logger.": "genkit.runs.csv_logger.",
    # 2026-12: the GPT family became the language-model family (it also holds the LSTM and
    # Hugging Face networks); `model=gpt` still selects it
    "genkit.models.gpt.GPT": "genkit.models.lm.LanguageModel",
}
# mirrors that tests serve on this machine
LOCAL_MIRRORS = ("http://127.0.0.1", "http://localhost")


class UntrustedConfig(GenkitError):
    """A checkpoint's config names code or files that genkit will not run or write."""


def _targets(node) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "_target_" and isinstance(value, str):
                yield value
            else:
                yield from _targets(value)
    elif isinstance(node, list):
        for item in node:
            yield from _targets(item)


def with_current_targets(node):
    """A stored config (plain containers) with every moved `_target_` renamed (MOVED_TARGETS)."""
    if isinstance(node, dict):
        return {
            key: _current(value) if key == "_target_" and isinstance(value, str) else with_current_targets(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [with_current_targets(item) for item in node]
    return node


def _current(target: str) -> str:
    for old, new in MOVED_TARGETS.items():
        if target.startswith(old):
            return new + target[len(old) :]
    return target


def _strings(node) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)
    elif isinstance(node, str):
        yield node


def check_config(cfg: DictConfig, source: str, trusted: Iterable[str] = ()) -> None:
    """A checkpoint's whole config: no interpolation (genkit stores configs resolved, so `${...}`
    can only be planted, and resolvers run code), and only trusted classes to build."""
    raw = OmegaConf.to_container(cfg, resolve=False)
    planted = next((s for s in _strings(raw) if "${" in s), None)
    if planted is not None:
        raise UntrustedConfig(
            f"{source} holds the interpolation {planted[:80]!r}; genkit writes checkpoint configs fully resolved, "
            f"so this checkpoint was altered. genkit will not open it."
        )
    check_targets(raw, source, trusted)


def _top_module(name: str) -> str:
    return name.split(".", 1)[0]


def _never_trusted(name: str) -> bool:
    """A module (or prefix) that runs code, reads files or loads pickles when a config names it:
    the standard library, builtins, and the loaders in NEVER_TRUSTED."""
    top = _top_module(name)
    return top in sys.stdlib_module_names or any(name.startswith(n) for n in NEVER_TRUSTED)


def check_trusted_prefixes(trusted: Iterable[str]) -> None:
    """trusted_targets entries name the user's own packages: an entry that covers the standard
    library, builtins or a loader (`os.`, `builtins.`, `torch.`, or `` which covers everything)
    would let any checkpoint run code, so it is refused."""
    for prefix in trusted:
        covered = [n for n in (*DANGEROUS_EXAMPLES, *NEVER_TRUSTED) if n.startswith(prefix)]
        if not prefix.strip(".") or covered or _never_trusted(prefix):
            what = (
                f"covers {covered[0].rstrip('.')}" if covered else f"is part of {_top_module(prefix) or 'everything'}"
            )
            raise UntrustedConfig(
                f"trusted_targets entry {prefix!r} {what}, which can run commands, read files or load pickles "
                f"when a checkpoint names it; genkit never builds the standard library, builtins or loaders from a "
                f"checkpoint. Name only your own package (e.g. trusted_targets=[my_project.models.])."
            )


def check_targets(raw: dict, source: str, trusted: Iterable[str] = ()) -> None:
    """Every `_target_` must be a class under a trusted prefix; checked before any import of the
    user's modules, so a refused target never runs module code either."""
    check_trusted_prefixes(trusted)
    prefixes = (*TRUSTED_TARGETS, *trusted)
    for target in _targets(raw):
        if not target.startswith(prefixes):
            if _never_trusted(target):  # os.system, builtins.eval: only an altered checkpoint names them
                advice = (
                    f"`{_top_module(target)}` is not a module genkit lets any checkpoint build, whatever "
                    f"trusted_targets says: a checkpoint that names it was altered to run code. Do not use it."
                )
            else:
                advice = (
                    f"If you trust this checkpoint and that code (your own package), pass "
                    f"trusted_targets=[{target.rsplit('.', 1)[0]}.] (a module prefix)."
                )
            raise UntrustedConfig(
                f"{source} asks to build `{target}`, which genkit does not build from a checkpoint (it trusts "
                f"{', '.join(TRUSTED_TARGETS)}). {advice}"
            )
        try:
            is_class = target in TRUSTED_FUNCTIONS or isinstance(get_class(target), type)
        except Exception:  # not importable, or not a class: both refused below
            is_class = False
        if not is_class:
            raise UntrustedConfig(
                f"{source} asks to call `{target}`, which is not a class genkit can build; a genkit checkpoint "
                f"only names model, network, data, optimizer and trainer classes. The checkpoint was altered."
            )


def check_plain_name(name: str, what: str) -> None:
    """A file or folder name, not a path: no separators, no `..`, not absolute."""
    if (
        not name
        or name in (".", "..")
        or PurePosixPath(name).name != name
        or PureWindowsPath(name).name != name
        or name.startswith("~")
    ):
        raise UntrustedConfig(
            f"{what} {name!r} is not a plain file name; data files live directly in their data set's "
            f"folder under the data root (e.g. train-images-idx3-ubyte.gz)."
        )


def check_mirror(url: str, dataset: str) -> None:
    if not (url.startswith("https://") or url.startswith(LOCAL_MIRRORS)):
        raise UntrustedConfig(
            f"The {dataset} mirror {url!r} is not an https:// address; genkit downloads data over https only."
        )


def _load_data_config(option: str) -> DictConfig:
    """configs/data/<option>.yaml merged over the configs it extends (its defaults list)."""
    cfg = OmegaConf.load(CONFIG_DIR / "data" / f"{option}.yaml")
    bases = [d for d in cfg.pop("defaults", []) if d != "_self_"]
    return OmegaConf.merge(*(_load_data_config(base) for base in bases), cfg) if bases else cfg


def shipped_data_config(folder: str | None) -> DictConfig | None:
    """genkit's own config of the built-in data set that lives in this folder, if there is one."""
    for path in sorted((CONFIG_DIR / "data").glob("*.yaml")):
        cfg = _load_data_config(path.stem)
        if folder is not None and cfg.get("folder", cfg.get("name")) == folder:
            return cfg
    return None
