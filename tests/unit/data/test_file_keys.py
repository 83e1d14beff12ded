"""Every data key that can name a file of the user's is declared (GenkitDataModule.file_keys), so
that genkit.checkpoints.provenance signs it and never follows it from a stranger's checkpoint.

The test walks every data module in genkit.data and every data config, and reads key names: a key
whose name says it holds a path, a file, a folder, a dataset, a directory, shards or a source must
be declared, or be one that genkit itself rewrites when it rebuilds a checkpoint (HANDLED)."""

import importlib
import inspect
import pkgutil
import re

import pytest
from omegaconf import OmegaConf

import genkit.data
from genkit.checkpoints.trust import _load_data_config
from genkit.config_files import CONFIG_DIR
from genkit.data.base import GenkitDataModule, file_keys_of
from genkit.training.restore import RESET_ON_RESTORE

# names that say "a file or a place": the test of a key, not a list of known keys
NAMES_A_FILE = re.compile(r"path|file|folder|dataset|dir|shard|source|url|mirror|root|tokenizer$|init_from")
# what genkit rewrites when it rebuilds a checkpoint (genkit.training.restore.load_model): the data
# root (this machine's), a built-in set's plain folder name under it and its files and mirrors
# (genkit's own config replaces them; mirrors must be https), and RESET_ON_RESTORE (cleared)
HANDLED = {"root", "folder", "mirrors", "files", *RESET_ON_RESTORE}
# keys whose names match but hold no place: the choice of tokenizer kind, a dataset's subset name
NOT_PLACES = {"tokenizer", "dataset_config"}


def _modules() -> list[type[GenkitDataModule]]:
    for info in pkgutil.iter_modules(genkit.data.__path__):
        importlib.import_module(f"genkit.data.{info.name}")
    found, todo = [], [GenkitDataModule]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls is not GenkitDataModule and cls.__module__.startswith("genkit.data."):
            found.append(cls)
    return found


def _undeclared(cls: type[GenkitDataModule], keys) -> list[str]:
    declared = set(cls.file_keys)
    # `files` names the user's files where declared (pairs), else a built-in set's list (HANDLED)
    return [k for k in keys if NAMES_A_FILE.search(k) and k not in declared | HANDLED | NOT_PLACES]


@pytest.mark.parametrize("cls", _modules(), ids=lambda c: c.__qualname__)
def test_every_data_module_declares_the_arguments_that_name_files(cls):
    params = [name for name in inspect.signature(cls.__init__).parameters if name not in ("self", "options")]
    assert _undeclared(cls, params) == [], f"{cls.__qualname__}: add these to file_keys or handle them on restore"
    # and every declared key is one the module takes
    takes = set(params) | {
        p for base in cls.__mro__[1:] if base is not object for p in inspect.signature(base.__init__).parameters
    }
    assert set(cls.file_keys) <= takes


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONFIG_DIR / "data").glob("*.yaml")))
def test_every_data_config_key_that_names_files_is_declared(name):
    cfg = _load_data_config(name)
    cls_keys = file_keys_of(cfg)
    from hydra.utils import get_class

    cls = get_class(cfg._target_)
    assert cls_keys == cls.file_keys
    assert _undeclared(cls, list(OmegaConf.to_container(cfg, resolve=False))) == []


def test_the_walk_finds_a_key_a_new_module_forgot():
    class ShardsData(GenkitDataModule):
        file_keys = ("path",)

        def __init__(self, path: str, shard_dir: str, batch_size: int = 8):
            super().__init__()

    assert _undeclared(ShardsData, ["path", "shard_dir", "batch_size"]) == ["shard_dir"]
