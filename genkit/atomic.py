"""Atomic file writes: a file holds its new content whole or keeps its old content, whatever
kills the writer (an exception, kill -9, a full disk, power loss), never half of either.

Every file genkit writes atomically goes through `atomic_path`: the content goes to a temporary
file beside the target (`.<name>.<random>.tmp`, so one file system, and recognisably temporary),
which is flushed to the disk (fsync), renamed over the target in one step (os.replace), and the
rename flushed in turn (fsync of the folder, where the OS can open one). On any failure the
temporary file is removed and the target is left as it was.

The temporary file is created with the permissions the user's umask gives any new file (as
`open(path, "w")` would, not tempfile's 0600), unless the caller asks for others (`mode`).

A folder that must appear whole (a data cache, an export) is a different job: its writers fill a
folder beside it and rename the folder into place themselves.
"""

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path, *, mode: int = 0o666, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write into (by any writer: open, torch.save, a
    library's save); when the block ends without an error, it becomes `path` in one rename.

    mode: the permissions of the new file before the umask (0o600 for a secret).
    overwrite=False: `path` is created only if it is absent (FileExistsError otherwise, and the
    file already there is kept), for a file that the first of several writers gets to make.
    The folder of `path` must exist: a write into a missing folder raises FileNotFoundError.
    """
    path = Path(path)
    tmp = _create_temp(path, mode)
    try:
        yield tmp
        _fsync_file(tmp)
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # a hard link fails if path exists: the rename that keeps the first
            tmp.unlink()
        _fsync_folder(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):  # the cleanup must not hide what went wrong
            tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str, *, mode: int = 0o666, overwrite: bool = True) -> None:
    """Write text (UTF-8) to path atomically (see atomic_path)."""
    write_bytes(path, text.encode("utf-8"), mode=mode, overwrite=overwrite)


def write_bytes(path: str | Path, data: bytes, *, mode: int = 0o666, overwrite: bool = True) -> None:
    """Write data to path atomically (see atomic_path)."""
    with atomic_path(path, mode=mode, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)


def _create_temp(path: Path, mode: int) -> Path:
    """An empty new file beside path, created here (O_EXCL) so no other writer shares it."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
        except FileExistsError:  # a name another writer drew: draw again
            continue
        return tmp


def _fsync_file(path: Path) -> None:
    # writers close their files before the block ends; fsync through a new descriptor flushes
    # the file's data all the same (a full disk may only be reported here: ENOSPC, EDQUOT)
    fd = os.open(path, os.O_RDWR if os.name == "nt" else os.O_RDONLY)  # Windows flushes only writable handles
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in folder survive a power loss. Windows cannot open a folder, and some file
    systems cannot fsync one (EINVAL): there the rename is as durable as the OS makes it."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def is_full_disk(err: OSError) -> bool:
    """Whether a write failed because the disk (or the user's quota on it) is full."""
    return err.errno in (errno.ENOSPC, errno.EDQUOT)
