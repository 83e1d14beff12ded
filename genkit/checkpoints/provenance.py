"""Whose data path is it: the data files a checkpoint names are read only where this machine wrote
the checkpoint, or where the user names them again.

A checkpoint's config says where its run's data was (`data.path: corpus.txt`). Followed blindly,
a stranger's checkpoint could make `genkit eval` read any file of yours (`data.path: /etc/passwd`)
and report a score of it. So `genkit train` signs the data paths it stores: an HMAC-SHA256 keyed
by a secret that genkit keeps for this user on this machine (KEY_FILE, created on first use, 0600).
A run directory's own files (.hydra/config.yaml, status.json) would not do: whoever ships a
checkpoint can ship a folder around it with matching files; the key never leaves this machine, so
no file from elsewhere can carry a valid stamp. A checkpoint without one (a stranger's, one written
before stamps, or one whose key was deleted) has its data paths replaced: sample and export do not
read data; eval stops and asks for data_path=.

Which keys name files is the data module's own declaration (`GenkitDataModule.file_keys`: `path`,
pairs' `files` and `dataset`, hf_text's `dataset` and `data_files`), passed in by the callers, so
a new data module's keys are covered by declaring them where the module is written.
"""

import contextlib
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from genkit.atomic import write_text
from genkit.checkpoints.trust import UntrustedConfig

# what an unsigned data path becomes when the command does not read data: a path that cannot
# exist (/dev/null is a file), named so that an error quoting it says what happened
NOT_READ = "/dev/null/(the checkpoint's data path, not read: pass data_path=)"


def key_file() -> Path:
    """$GENKIT_KEY_FILE, else $XDG_CONFIG_HOME/genkit/machine.key (~/.config/genkit/machine.key):
    a config folder, not the cache, so that clearing caches does not orphan one's own runs."""
    if os.environ.get("GENKIT_KEY_FILE"):
        return Path(os.environ["GENKIT_KEY_FILE"]).expanduser()
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config").expanduser()
    return config_home / "genkit" / "machine.key"


def _key(create: bool) -> bytes | None:
    path = key_file()
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError):
        if not create:
            return None
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # another process may have made one first: keep the first
        write_text(path, secrets.token_hex(32), mode=0o600, overwrite=False)
    return bytes.fromhex(path.read_text().strip())


def _plain(value: Any) -> str:
    """One text per value, the same for a checkpoint's plain dict and a composed DictConfig (a
    path as itself, as stamps before file_keys signed it; a split -> file mapping as JSON)."""
    if isinstance(value, DictConfig | ListConfig):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _paths(data_cfg: Any, keys: Sequence[str]) -> dict[str, str]:
    get = data_cfg.get if hasattr(data_cfg, "get") else lambda k: None
    return {key: _plain(get(key)) for key in keys if get(key) is not None}


def _sign(key: bytes, paths: dict[str, str]) -> str:
    return hmac.new(key, json.dumps(paths, sort_keys=True).encode(), hashlib.sha256).hexdigest()


def data_stamp(data_cfg: Any, keys: Sequence[str]) -> str | None:
    """The stamp `genkit train` stores beside a config whose data names files (None if it names
    none); `keys` are the data module's file_keys."""
    paths = _paths(data_cfg, keys)
    return _sign(_key(create=True), paths) if paths else None


def written_here(data_cfg: Any, stamp: Any, keys: Sequence[str]) -> bool:
    """Whether this machine's `genkit train` stored these data paths (the stamp verifies)."""
    key = _key(create=False)
    paths = _paths(data_cfg, keys)
    if key is None or not isinstance(stamp, str) or not paths:
        return False
    return hmac.compare_digest(_sign(key, paths), stamp)


def data_paths_to_use(
    data_cfg: Any,
    checkpoint: dict,
    source: str | Path,
    data_path: str | None,
    reads_data: bool,
    keys: Sequence[str],
    shipped: Any = None,
) -> dict[str, Any]:
    """What the data config's file-naming keys (`keys`, the data module's file_keys) must become
    for a rebuilt checkpoint: the user's `data_path` in the first key (the others cleared) if
    given; the stored values as they are if this machine wrote them, or where they are genkit's
    own (`shipped`: genkit's config of the built-in data set, e.g. wikitext2's Hub name); else, for
    a command that reads no data (sample, export), NOT_READ, and for one that does (eval), an
    error that says which option to pass. The stored paths themselves are never opened then."""
    keys = [key for key in keys if key in data_cfg]
    if not keys:
        return {}
    if data_path is not None:
        return {key: (str(Path(data_path).expanduser()) if i == 0 else None) for i, key in enumerate(keys)}
    stored = _paths(data_cfg, keys)
    meta = checkpoint.get("genkit") if isinstance(checkpoint, dict) else None
    if not stored or written_here(data_cfg, (meta or {}).get("data_stamp"), keys):
        return {}
    ours = {key: _plain(shipped[key]) for key in keys if shipped is not None and shipped.get(key) is not None}
    theirs = {key: value for key, value in stored.items() if ours.get(key) != value}
    if not theirs:
        return {}
    if not reads_data:
        return {key: (NOT_READ if i == 0 else None) for i, key in enumerate(keys)}
    named = ", ".join(f"data.{key}={value!r}" for key, value in theirs.items())
    raise UntrustedConfig(
        f"The checkpoint {source} names its data as {named}, but it was not written by `genkit train` on this "
        f"machine (or before genkit signed the data paths it stores), and genkit does not read a file because a "
        f"checkpoint names it. Pass data_path=<your copy of that data> (a file or folder) to score it on your data."
    )
