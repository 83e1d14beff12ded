"""Shards: a prepared data set as LitData chunks, which every training process streams its own
part of, from a local folder or from object storage (s3://, gs://, azure://; LitData's clients).

`genkit prepare data=<name> out=<folder>` writes (genkit.commands.prepare):

    <folder>/genkit-shards.json   what the shards hold: kind (tokens | pictures | pairs), the data set
                                  they came from, its sizes, a fingerprint, the format version
    <folder>/tokenizer.json       token and pair shards: the tokenizer the ids mean
    <folder>/train/ val/ test/    one LitData folder per split (index.json + chunk-*.bin)

Why LitData (measured in docs/benchmarks/data.md with scripts/bench_shard_formats.py): it read
the same items 2.7 to 6 times faster than WebDataset and MosaicML streaming on this machine, it
splits the chunks between processes, nodes and workers itself, its loader saves and restores its
position mid-epoch (WebDataset's cannot), it reads token streams as blocks of any length, and it
installs beside genkit's pins (MosaicML streaming pins transformers<5).

What is genkit's own here: the folder's description (so a shard folder is checked against what
a run expects before anything is read), `ShardLoader`, which saves the position of the last
batch training *consumed* (Lightning fetches a batch ahead, so LitData's own count is one batch
past what a resumed run must start from), and the mixing of several folders
(genkit.data.shard_mix, which says why).
"""

import json
import logging
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from litdata import StreamingDataLoader

from genkit.atomic import write_text
from genkit.errors import GenkitError

FORMAT, VERSION = "genkit-shards", 1
META, TOKENIZER = "genkit-shards.json", "tokenizer.json"
REMOTE_PREFIXES = ("s3://", "gs://", "gcs://", "azure://", "az://", "r2://", "hf://")
# LitData's notes (e.g. the size it picked for a remote folder's local cache) are not a run's news
logging.getLogger("litdata").setLevel(logging.WARNING)
# bytes of one chunk: large enough that object storage serves whole reads, small enough that
# every process of a run has several to itself
CHUNK_BYTES = 64 * 2**20


def is_remote(path: str) -> bool:
    return str(path).startswith(REMOTE_PREFIXES)


def split_dir(root: str, split: str) -> str:
    return f"{str(root).rstrip('/')}/{split}" if is_remote(root) else str(Path(root).expanduser() / split)


def local_cache(cache_dir: str | None, root: str) -> Path:
    """Where the files of a remote shard folder are kept on this machine (data.cache_dir, or
    ~/.cache/genkit/shards), one folder per remote folder."""
    import hashlib

    base = Path(cache_dir).expanduser() if cache_dir else Path.home() / ".cache" / "genkit" / "shards"
    return base / hashlib.sha256(str(root).encode()).hexdigest()[:16]


def plain_http_endpoint() -> None:
    """S3-compatible storage served over plain http (a MinIO on the local network, AWS_ENDPOINT_URL=
    http://...): LitData fetches chunks with obstore when it is installed, which refuses http to a
    custom endpoint, so its other S3 client (boto3, which takes the endpoint) fetches them. A
    module setting of LitData's: DataLoader workers forked after this inherit it."""
    if os.environ.get("AWS_ENDPOINT_URL", "").startswith("http://"):
        import litdata.streaming.downloader

        litdata.streaming.downloader._OBSTORE_AVAILABLE = False


def fetch(root: str, name: str, cache_dir: str | None = None) -> Path:
    """A file of a shard folder on this machine: the local file, or a copy of the remote one."""
    if not is_remote(root):
        return Path(root).expanduser() / name
    from litdata.streaming.downloader import get_downloader

    plain_http_endpoint()
    folder = local_cache(cache_dir, root)
    folder.mkdir(parents=True, exist_ok=True)
    local = folder / name
    if not local.is_file():
        try:
            get_downloader(str(root), str(folder), []).download_file(f"{str(root).rstrip('/')}/{name}", str(local))
        except Exception as error:  # the storage client's own: no credentials, no bucket, no network
            raise GenkitError(
                f"Could not read {root}/{name} ({type(error).__name__}: {error}). Check the address and that "
                f"this machine's credentials for that storage are set (e.g. AWS_PROFILE or AWS_ACCESS_KEY_ID, "
                f"and AWS_ENDPOINT_URL for storage other than AWS)."
            ) from None
    return local


def read_meta(root: str, kind: str | None = None, cache_dir: str | None = None) -> dict[str, Any]:
    """The description of a shard folder, checked: written by genkit, this format version, and
    (if given) of the kind a data config reads."""
    if not root or root == "???":
        raise GenkitError("data.path is not set; give the folder `genkit prepare` wrote (or an s3:// address).")
    if not is_remote(root) and not Path(root).expanduser().is_dir():
        raise GenkitError(f"data.path={root} is not a folder; give the folder `genkit prepare` wrote.")
    path = fetch(root, META, cache_dir)
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise GenkitError(
            f"{root} holds no {META}, so it is not a folder of shards written by `genkit prepare` (or it was "
            f"not copied whole); run `genkit prepare data=<name> out={root}`."
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise GenkitError(f"{path} is damaged ({error}); write the shards again with `genkit prepare`.") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise GenkitError(f"{path} does not describe genkit shards; write the shards again with `genkit prepare`.")
    if meta.get("version") != VERSION:
        raise GenkitError(
            f"The shards in {root} are format version {meta.get('version')}; this genkit reads version {VERSION}. "
            f"Write them again with this genkit's `genkit prepare data={meta.get('data', '<name>')} out={root}`."
        )
    if kind is not None and meta.get("kind") != kind:
        other = {"tokens": "data=text_shards", "pictures": "data=image_shards", "pairs": "data=pairs_shards"}
        other = other.get(meta.get("kind"), "")
        raise GenkitError(
            f"The shards in {root} hold {meta.get('kind')} (from data={meta.get('data')}), not {kind}; "
            f"train on them with {other or 'the matching data config'}."
        )
    return meta


def write_meta(folder: Path, meta: dict[str, Any]) -> None:
    """Written last, by one rename: a folder without it is not a shard folder."""
    text = json.dumps({"format": FORMAT, "version": VERSION, **meta}, indent=1, sort_keys=True)
    write_text(folder / META, text)  # with the permissions of the user's umask, as the shards beside it


class SplitWriter:
    """One split's items into LitData chunks (the library's writer; items one at a time)."""

    def __init__(self, folder: Path, tokens: bool = False, chunk_bytes: int = CHUNK_BYTES):
        from litdata.streaming.item_loader import TokensLoader
        from litdata.streaming.writer import BinaryWriter

        folder.mkdir(parents=True, exist_ok=True)
        if tokens:  # token arrays laid end to end: chunk_size counts tokens, read as blocks of any length
            self.writer = BinaryWriter(str(folder), chunk_size=chunk_bytes // 2, item_loader=TokensLoader())
        else:
            self.writer = BinaryWriter(str(folder), chunk_bytes=chunk_bytes)
        self.count = 0

    def add(self, item: Any) -> None:
        self.writer[self.count] = item
        self.count += 1

    def close(self) -> int:
        if self.count == 0:  # LitData's merge would wait for an index its writer never writes
            return 0
        self.writer.done()
        self.writer.merge()
        return self.count


def check_weights(mix: Any, paths: Sequence[str]) -> list[float] | None:
    """data.mix: one positive weight per source of data.path (null: every source once per epoch)."""
    if mix is None:
        return None
    if isinstance(mix, (str, bytes)) or not isinstance(mix, Sequence):
        mix = [mix]
    weights = []
    for w in mix:
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not w > 0 or w != w or w == float("inf"):
            raise GenkitError(
                f"data.mix={list(mix)!r}: every weight must be a positive number (a source's share of the training "
                f"items, e.g. data.mix=[3,1]); {w!r} is not."
            )
        weights.append(float(w))
    if len(weights) != len(paths):
        raise GenkitError(
            f"data.mix gives {len(weights)} weights for {len(paths)} sources in data.path; give one weight per "
            f"shard folder, in the order of data.path."
        )
    return [w / sum(weights) for w in weights]


def source_paths(path: Any) -> list[str]:
    """data.path: one shard folder, or a list of them (mixed by data.mix)."""
    paths = [path] if isinstance(path, (str, os.PathLike)) or path is None else list(path)
    if not paths:
        raise GenkitError("data.path is an empty list; give one shard folder or a list of them.")
    return [str(p) for p in paths]


def streaming_dataset(root: str, split: str, *, cache_dir: str | None, shuffle: bool, seed: int, **kwargs):
    """A split of a shard folder as LitData's StreamingDataset; a damaged index is one paragraph."""
    from litdata import StreamingDataset

    remote = is_remote(root)
    cache = str(local_cache(cache_dir, root) / split) if remote else None
    if not remote:
        check_chunks(Path(split_dir(root, split)))
    else:
        plain_http_endpoint()
    try:
        # shuffled: every item of a chunk in a random order ("full"), not LitData's default of windows
        # of 256 neighbouring items, whose batches would each come from one stretch of the text
        return StreamingDataset(split_dir(root, split), cache_dir=cache, shuffle=shuffle, seed=seed, drop_last=True,
                                item_shuffle_window="full" if shuffle else None, **kwargs)  # fmt: skip
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as error:
        raise GenkitError(
            f"The {split} split of the shards in {root} cannot be read ({type(error).__name__}: {error}); the "
            f"folder is incomplete or damaged. Write it again with `genkit prepare`."
        ) from None


def check_chunks(folder: Path) -> None:
    """Every chunk a local split's index names is there with the size it gives: a shard folder
    copied in part, or cut short, is named before a run reads from it (a size per file, not
    its content: reading every chunk twice would cost a corpus's read)."""
    try:
        chunks = json.loads((folder / "index.json").read_text())["chunks"]
        expected = {chunk["filename"]: int(chunk["chunk_bytes"]) for chunk in chunks}
    except (OSError, ValueError, KeyError, TypeError):
        return  # LitData's own reading names the index (streaming_dataset)
    for name, size in expected.items():
        found = (folder / name).stat().st_size if (folder / name).is_file() else None
        if found != size:
            holds = "is missing" if found is None else f"holds {found} bytes, not the {size} its index gives"
            raise GenkitError(
                f"{folder / name} {holds}: the shard folder was not copied whole, or was damaged. Copy it again, "
                f"or write it again with `genkit prepare`."
            )


def shard_loader(
    datasets: list,
    weights: list[float] | None,
    batch_size: int,
    seed: int,
    num_workers: int,
    collate_fn: Callable[[list], Any] | None = None,
):
    """The training loader over one source, or several mixed (by weight, or each once per epoch);
    `collate_fn` joins a batch's items (None: LitData's, which stacks them). Several sources are
    mixed a batch at a time, each through its own loader (genkit.data.shard_mix says why)."""
    from genkit.data.shard_mix import MixedLoader

    loaders = [
        ShardLoader(dataset, batch_size=batch_size, num_workers=num_workers, drop_last=True, collate_fn=collate_fn)
        for dataset in datasets
    ]
    return loaders[0] if len(loaders) == 1 else MixedLoader(loaders, weights, seed)


class ShardLoader(StreamingDataLoader):
    """LitData's loader, whose saved position is that of the last batch training consumed.

    Lightning saves a loader's state_dict in checkpoints and restores it before iterating (its
    protocol for resumable loaders), but its loop fetches one batch ahead of training: LitData's
    own count then includes a batch no step saw, and a resumed run would skip it. The position
    after each yielded batch is kept; `consumed()` (called by the data module as each training
    batch reaches the model, like genkit.data.batching.ShuffledBatches) moves the saved one on.
    """

    _POSITION = ("_num_samples_yielded_streaming", "_latest_worker_idx", "_num_samples_yielded_wrapper",
                 "current_epoch")  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # the position after each batch handed out and not yet consumed, and the saved one
        self._positions: deque[tuple] = deque()
        self._saved: tuple | None = None
        self._trained = False  # whether training consumed a batch of the current iteration

    def _position(self) -> tuple:
        from copy import deepcopy

        return tuple(deepcopy(getattr(self, name)) for name in self._POSITION)

    def __iter__(self) -> Iterator[Any]:
        # a restored position holds for one epoch: Lightning ends an epoch after len(loader) batches
        # without asking for one more, which leaves LitData's iteration unfinished and its `restore`
        # flag set, so LitData would start the next epoch from the restored position again
        if self.restore and self._trained:
            self.restore = False
        self._trained = False
        if not self._positions:  # nothing handed out waits: an epoch that yields nothing resumes here
            self._saved = self._position()
        # else the last batches of the pass before are still to be consumed (a mixed loader fetches
        # ahead across passes, genkit.data.shard_mix): their positions stay first in line
        for batch in super().__iter__():
            self._positions.append(self._position())
            yield batch

    def load_state_dict(self, obj: dict[str, Any]) -> None:
        super().load_state_dict(obj)
        self._trained = False  # the restored epoch is still to be trained

    def consumed(self) -> None:
        self._trained = True
        if self._positions:
            self._saved = self._positions.popleft()

    def position(self) -> tuple[int, int]:
        """Where training stands in the shards (epoch, items consumed in it): what seeds a batch's
        random augmentation, the same in a resumed run."""
        saved = self._saved or self._position()
        return int(saved[3]), int(saved[0])

    def state_dict(self) -> dict[str, Any]:
        if self._saved is None:  # never iterated: as it stands (a position loaded, or none)
            return super().state_dict()
        now = self._position()
        for name, value in zip(self._POSITION, self._saved, strict=True):
            setattr(self, name, value)
        try:
            return super().state_dict()
        finally:
            for name, value in zip(self._POSITION, now, strict=True):
                setattr(self, name, value)
