"""Token caches written as they are encoded: a text split of any size becomes one memory-mapped
file of token ids (uint16, or uint32 past 65,536 tokens), appended piece by piece.

Encoding runs in `num_proc` worker processes, each turning whole pieces (genkit.data.text_pieces)
into ids, at most two pieces per worker in flight, so memory holds a few pieces whatever the
corpus size. The pieces' ids are written in order, and after each one the cache's partial folder
records how far it got (progress.json: per split, the characters read and the tokens written);
an interrupted preparation starts again from there, with the tokenizer it had fitted. The
partial folder becomes the cache only when every split is written (one rename), so a
half-written cache is never read.

Hand-written rather than `datasets.map(num_proc=...)`: data=text's sources are plain files cut by
character fractions, and `map` would first copy the whole corpus into Arrow files of its own.
"""

import concurrent.futures
import json
import logging
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from genkit.atomic import is_full_disk, write_text
from genkit.data.text_pieces import PIECE_CHARS, SplitRange, pieces
from genkit.data.tokenizers import KINDS, tokenizer_from_json
from genkit.errors import GenkitError

log = logging.getLogger("genkit")

# seconds between two progress lines
REPORT_EVERY = 10.0
# a split this long is encoded in worker processes; shorter ones here (a pool starts in ~1 s)
PARALLEL_FROM_CHARS = 4 * PIECE_CHARS

_worker_tokenizer = None


def default_num_proc() -> int:
    """The cores this process may use (a SLURM or taskset allocation, not the whole machine)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def sample_pieces(rng: SplitRange, fit_chars: int, transform: Callable[[str], str]) -> Iterator[str]:
    """The pieces a tokenizer is fitted on: all of the range if it holds at most fit_chars
    characters, else pieces spread evenly through it that add up to about fit_chars (a sample
    of the whole corpus, not its beginning: files are often sorted by source or date)."""
    share = min(1.0, fit_chars / max(rng.chars, 1))
    for k, (text, _, _) in enumerate(pieces(rng)):
        # piece k is taken when k * share passes a whole number: the first, then every 1/share-th
        if share >= 1.0 or k == 0 or int(k * share) > int((k - 1) * share):
            yield transform(text)


def fit_tokenizer(kind: str, train: SplitRange, vocab_size: int, fit_chars: int, transform: Callable[[str], str]):
    """Word and character vocabularies from streaming counts over the whole training split (they
    are bounded by the vocabulary); byte-level BPE from a sample of at most fit_chars characters
    (its trainer's pair counts grow with the text it sees)."""
    cls = KINDS[kind]
    if kind == "bpe":
        return cls.fit_pieces(sample_pieces(train, fit_chars, transform), vocab_size)
    return cls.fit_pieces((transform(text) for text, _, _ in pieces(train)), vocab_size)


def _init_worker(spec: dict) -> None:
    global _worker_tokenizer
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one core per worker: num_proc says how many
    _worker_tokenizer = tokenizer_from_json(spec)


def _encode(tokenizer, text: str, ends_line: bool, dtype: str) -> np.ndarray:
    ids = tokenizer.encode(text)
    if tokenizer.kind == "word" and not ends_line:  # <eos> ends lines: a piece cut inside one gets none there
        ids = ids[:-1]
    return np.asarray(ids, dtype=dtype)


def _encode_in_worker(text: str, ends_line: bool, dtype: str) -> np.ndarray:
    return _encode(_worker_tokenizer, text, ends_line, dtype)


class PartialCache:
    """The folder a cache is prepared in (`.<cache name>.partial` beside it) and its progress."""

    def __init__(self, cache: Path):
        self.cache = cache
        self.folder = cache.with_name(f".{cache.name}.partial")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.record = self.folder / "progress.json"
        self.progress: dict = json.loads(self.record.read_text()) if self.record.is_file() else {}

    def split(self, name: str) -> dict:
        return self.progress.setdefault(name, {"chars": 0, "tokens": 0, "done": False})

    def save(self) -> None:
        write_text(self.record, json.dumps(self.progress))

    def finish(self, meta: dict) -> None:
        self.record.unlink(missing_ok=True)
        finish_cache(self.folder, self.cache, meta)


def finish_cache(folder: Path, cache: Path, meta: dict) -> None:
    """meta.json last, then one rename: a cache appears whole or not at all (its writer holds the
    cache's file lock, so no other process finishes it first)."""
    (folder / "meta.json").write_text(json.dumps(meta, indent=1))
    os.replace(folder, cache)


class Encoder:
    """Pieces of text -> token ids, here or in worker processes, in the order given."""

    def __init__(self, tokenizer, dtype: str, num_proc: int):
        self.tokenizer, self.dtype, self.num_proc = tokenizer, dtype, max(1, int(num_proc))
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def encode(self, items: Iterator[tuple[str, bool, int]], parallel: bool) -> Iterator[tuple[np.ndarray, int, int]]:
        """(ids, characters done, UTF-8 bytes of the piece) for each (text, ends_line, done)."""
        if not parallel or self.num_proc == 1:
            for text, ends_line, done in items:
                yield _encode(self.tokenizer, text, ends_line, self.dtype), done, len(text.encode("utf-8", "replace"))
            return
        pool = self._workers()
        waiting: deque = deque()
        for text, ends_line, done in items:
            waiting.append(
                (
                    pool.submit(_encode_in_worker, text, ends_line, self.dtype),
                    done,
                    len(text.encode("utf-8", "replace")),
                )
            )
            if len(waiting) >= 2 * self.num_proc:  # bounded: the reader never runs ahead of the workers
                future, done_at, size = waiting.popleft()
                yield future.result(), done_at, size
        while waiting:
            future, done_at, size = waiting.popleft()
            yield future.result(), done_at, size

    def _workers(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: the parent has PyTorch's and the tokenizers' threads running
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self.num_proc,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.tokenizer.to_json(),),
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


def write_split(
    partial: PartialCache,
    split: str,
    rng: SplitRange,
    encoder: Encoder,
    transform: Callable[[str], str],
    name: str,
) -> int:
    """Encode one split into <partial>/<split>.bin, resuming where progress.json says; the tokens written."""
    state = partial.split(split)
    if state["done"]:
        return state["tokens"]
    path = partial.folder / f"{split}.bin"
    itemsize = np.dtype(encoder.dtype).itemsize
    try:
        with open(path, "ab") as f:
            f.truncate(state["tokens"] * itemsize)  # ids past the last recorded piece are redone
            f.seek(state["tokens"] * itemsize)
            if state["chars"]:
                log.info(
                    "Resuming the preparation of %s %s at character %d of %d", name, split, state["chars"], rng.chars
                )
            items = ((transform(text), ends, done) for text, ends, done in pieces(rng, skip=state["chars"]))
            report = _Progress(name, split, rng.chars, state["chars"])
            for ids, done, size in encoder.encode(items, parallel=rng.chars - state["chars"] >= PARALLEL_FROM_CHARS):
                f.write(ids.tobytes())
                f.flush()
                # on disk before the record says so: after a power cut, resuming must not trust tokens
                # that were only in the page cache
                os.fsync(f.fileno())
                state["chars"], state["tokens"] = done, state["tokens"] + len(ids)
                partial.save()
                report.update(done, size)
        state["done"] = True
        partial.save()
    except OSError as err:
        if not is_full_disk(err):
            raise
        raise GenkitError(
            f"The disk holding {partial.folder} filled up while genkit was writing the {split} tokens of {name} "
            f"({state['tokens']} tokens written). Free some space (or point data.cache_dir at a larger disk) and run "
            f"again: the preparation resumes where it stopped, and the unfinished cache is never used."
        ) from None
    return state["tokens"]


class _Progress:
    """A line every REPORT_EVERY seconds: how far, how fast, how long still."""

    def __init__(self, name: str, split: str, total_chars: int, start_chars: int):
        self.name, self.split, self.total, self.start = name, split, total_chars, start_chars
        self.began = self.last = time.monotonic()
        self.bytes = 0

    def update(self, done_chars: int, size: int) -> None:
        self.bytes += size
        now = time.monotonic()
        if now - self.last < REPORT_EVERY:
            return
        self.last = now
        rate = self.bytes / max(now - self.began, 1e-9) / 1e6
        done = done_chars - self.start
        eta = (now - self.began) * (self.total - done_chars) / max(done, 1)
        log.info(
            "Tokenising %s %s: %.0f%% (%.0f MB), %.1f MB/s, about %s left",
            self.name, self.split, 100 * done_chars / max(self.total, 1), self.bytes / 1e6, rate, _duration(eta),
        )  # fmt: skip


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def mapped_again(ids: np.ndarray) -> np.ndarray:
    """A memory-mapped split of token ids through a map opened now (any other array as it is).
    Readers map a split again for each batch or piece they read, as nanoGPT maps its tokens: the
    pages a map kept open has read count in the process's resident memory, and reading all of a
    corpus in time would count all of it (docs/benchmarks/data.md: +385 MB over 20,000 batches of
    a 400 MB file, against +4 MB)."""
    if not isinstance(ids, np.memmap):
        return ids
    return np.memmap(ids.filename, dtype=ids.dtype, mode="r", offset=ids.offset, shape=ids.shape)
