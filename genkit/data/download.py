"""Find a data set's files on disk, or download them with SHA-256 checks.

A data set lives in `<root>/<folder>/<official file names>`, where root is `data.root`, else
$GENKIT_DATA_DIR, else the per-user cache. Files already on disk are trusted as they are
(a user may hold a re-exported copy); only downloads are checked against the official SHA-256.
"""

import hashlib
import logging
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from genkit.atomic import atomic_path
from genkit.checkpoints.trust import check_mirror, check_plain_name
from genkit.errors import ChecksumError, DataUnavailableError

log = logging.getLogger(__name__)

CHUNK = 1 << 20


def default_data_root() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "genkit" / "data"


def resolve_root(root: str | os.PathLike | None) -> Path:
    """`data.root` if given, else $GENKIT_DATA_DIR, else the per-user cache folder."""
    if root:
        return Path(root).expanduser()
    env = os.environ.get("GENKIT_DATA_DIR")
    return Path(env).expanduser() if env else default_data_root()


def local_copy(folder: Path, name: str) -> Path | None:
    """The file, or its decompressed twin (`x.gz` may also sit on disk as `x`)."""
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, dest: Path, sha256: str, *, timeout: float = 30.0) -> Path:
    """Download url to dest; the file appears only complete and with the expected SHA-256."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with atomic_path(dest) as partial:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                transient=True,
                disable=not sys.stderr.isatty(),
            ) as progress:
                task = progress.add_task(dest.name, total=total)
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    progress.advance(task, len(chunk))
        if digest.hexdigest() != sha256:
            raise ChecksumError(
                f"The download of {dest.name} from {url} has SHA-256 {digest.hexdigest()}, not the "
                f"expected {sha256}; it was discarded. The mirror may serve a different or damaged "
                f"file: try again later, or fetch the file yourself and put it in {dest.parent}."
            )
    return dest


def ensure_files(folder: Path, files: Mapping[str, str], mirrors: Sequence[str], *, dataset: str) -> dict[str, Path]:
    """Return the path of every file, downloading the missing ones from the first mirror that works."""
    for name in files:
        check_plain_name(name, f"The {dataset} file")
    for mirror in mirrors:
        check_mirror(mirror, dataset)
    found = {name: local_copy(folder, name) for name in files}
    for name, path in found.items():
        if path is not None:
            continue
        failures = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name
            log.info("Downloading %s from %s", name, url)
            try:
                found[name] = download(url, folder / name, files[name])
                break
            except ChecksumError:
                failures.append(f"{url} (wrong SHA-256, discarded)")
            except (urllib.error.URLError, OSError) as err:
                failures.append(f"{url} ({getattr(err, 'reason', err)})")
        else:
            missing = [n for n, p in found.items() if p is None]
            raise DataUnavailableError(
                f"The {dataset} data set is not on disk and could not be downloaded "
                f"(tried {'; '.join(failures) or 'no mirror'}). Put the files {', '.join(missing)} "
                f"in {folder}, or point genkit at a folder that holds a '{folder.name}' subfolder "
                f"with them: `data.root=<folder>` or `export GENKIT_DATA_DIR=<folder>`."
            )
    return found
