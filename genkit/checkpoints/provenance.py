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
"""

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

from genkit.checkpoints.trust import UntrustedConfig

# the data config keys that name files of the user's (text, image_folder, pairs: data.path)
PATH_KEYS = ("path",)
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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    try:
        os.link(tmp, path)  # another process may have made one first: keep the first
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return bytes.fromhex(path.read_text().strip())


def _paths(data_cfg: Any) -> dict[str, Any]:
    get = data_cfg.get if hasattr(data_cfg, "get") else lambda k: None
    return {key: str(get(key)) for key in PATH_KEYS if get(key) is not None}


def data_stamp(data_cfg: Any) -> str | None:
    """The stamp `genkit train` stores beside a config whose data names files (None if it names none)."""
    paths = _paths(data_cfg)
    if not paths:
        return None
    message = json.dumps(paths, sort_keys=True).encode()
    return hmac.new(_key(create=True), message, hashlib.sha256).hexdigest()


def written_here(data_cfg: Any, stamp: Any) -> bool:
    """Whether this machine's `genkit train` stored these data paths (the stamp verifies)."""
    key = _key(create=False)
    paths = _paths(data_cfg)
    if key is None or not isinstance(stamp, str) or not paths:
        return False
    expected = hmac.new(key, json.dumps(paths, sort_keys=True).encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, stamp)


def named_paths(data_cfg: Any) -> dict[str, Any]:
    """The data config's values that name files, e.g. {"path": "corpus.txt"}."""
    return _paths(data_cfg)


def data_paths_to_use(
    data_cfg: Any, checkpoint: dict, source: str | Path, data_path: str | None, reads_data: bool
) -> dict[str, str]:
    """What the data config's file-naming keys must become for a rebuilt checkpoint: the user's
    `data_path` if given; the stored paths as they are if this machine wrote them; else, for a
    command that reads no data (sample, export), NOT_READ, and for one that does (eval), an error
    that says which option to pass. The stored path itself is never opened in that case."""
    stored = named_paths(data_cfg)
    if data_path is not None:
        return {key: str(Path(data_path).expanduser()) for key in PATH_KEYS if key in data_cfg}
    meta = checkpoint.get("genkit") if isinstance(checkpoint, dict) else None
    if not stored or written_here(data_cfg, (meta or {}).get("data_stamp")):
        return {}
    if not reads_data:
        return dict.fromkeys(stored, NOT_READ)
    named = ", ".join(f"data.{key}={value!r}" for key, value in stored.items())
    raise UntrustedConfig(
        f"The checkpoint {source} names its data as {named}, but it was not written by `genkit train` on this "
        f"machine (or before genkit signed the data paths it stores), and genkit does not read a file because a "
        f"checkpoint names it. Pass data_path=<your copy of that data> (a file or folder) to score it on your data."
    )
