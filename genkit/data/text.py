"""One LightningDataModule family for token streams: PTB (words or characters), Tiny
Shakespeare, or any text, tokenised once and cached as a compact binary array of ids.

Training draws windows of block_size tokens at random offsets (one epoch ~ one pass over the
tokens). Evaluation walks the split in contiguous windows so that every token is predicted
exactly once: perplexity is then the standard per-token number.
"""

import functools
import hashlib
import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from genkit.checkpoints.files import load_checkpoint
from genkit.checkpoints.hub import pretrained_dir
from genkit.checkpoints.starting_weights import starting_checkpoint
from genkit.checkpoints.trust import check_plain_name
from genkit.data.base import GenkitDataModule, with_suffix
from genkit.data.batching import data_device, per_process
from genkit.data.chat import GENKIT_CHAT_TEMPLATE
from genkit.data.download import default_data_root, ensure_files, resolve_root, sha256_of
from genkit.data.text_files import check_encoding, empty_split_message
from genkit.data.text_pieces import FileStream, SplitRange, cut_stream, pieces, whole
from genkit.data.token_files import Encoder, PartialCache, default_num_proc, fit_tokenizer, mapped_again, write_split
from genkit.data.tokenizers import KINDS, BPETokenizer, load_tokenizer, save_tokenizer, tokenizer_from_json
from genkit.errors import GenkitError
from genkit.loss_targets import IGNORE_INDEX
from genkit.options import TEXT, Option

log = logging.getLogger(__name__)

# bump when the cached layout or tokenisation changes, so old caches are not reused
CACHE_VERSION = 1
# characters of the training text a BPE tokenizer is fitted on, at most (data.fit_chars)
FIT_CHARS = 100_000_000


def _unchanged(text: str) -> str:
    return text


def _check_count(key: str, value, least: int, meaning: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise GenkitError(f"data.{key}={value!r} must be a whole number of at least {least} ({meaning}).")


class TrainWindows(Dataset):
    """Windows of block_size + 1 tokens; window i starts at i * T plus a random offset in [0, T).

    ids is a numpy array (memory-mapped cache) or a torch tensor already on the GPU.
    """

    def __init__(self, ids: np.ndarray | torch.Tensor, block_size: int):
        if len(ids) < block_size + 2:
            raise GenkitError(f"The training split has {len(ids)} tokens, fewer than block_size + 2.")
        self.ids, self.block_size = ids, block_size
        self.offsets = torch.arange(block_size + 1)

    def __len__(self) -> int:
        return (len(self.ids) - 1) // self.block_size

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        T = self.block_size
        starts = (torch.as_tensor(indices) * T + torch.randint(0, T, (len(indices),))).clamp(max=len(self.ids) - T - 1)
        if isinstance(self.ids, torch.Tensor):  # on the GPU: only the B start positions cross over
            starts = starts.to(self.ids.device)
            chunk = self.ids[starts[:, None] + self.offsets.to(self.ids.device)]  # (B, T+1)
        else:
            # a map of the split opened for this batch (token_files.mapped_again says why)
            windows = mapped_again(self.ids)[(starts[:, None] + self.offsets).numpy()]
            chunk = torch.from_numpy(windows.astype(np.int64))
        return chunk[:, :-1], chunk[:, 1:]

    def __getitem__(self, i: int):
        x, y = self.__getitems__([i])
        return x[0], y[0]


class EvalWindows(Dataset):
    """Contiguous windows over [bos] + ids; targets past the end are IGNORE_INDEX. The split stays
    where it is (memory-mapped): each window reads its own slice."""

    def __init__(self, ids: np.ndarray, block_size: int, eot_id: int):
        self.ids, self.block_size, self.eot_id = ids, block_size, eot_id

    def __len__(self) -> int:
        return -(-len(self.ids) // self.block_size)

    def _stream(self, start: int, end: int) -> torch.Tensor:
        """[bos] + ids, positions [start, end)."""
        end = min(end, len(self.ids) + 1)
        if start >= end:
            return torch.zeros(0, dtype=torch.long)
        ids = np.asarray(self.ids[max(start - 1, 0) : end - 1], dtype=np.int64)
        if start == 0:
            ids = np.concatenate([np.array([self.eot_id], dtype=np.int64), ids])
        return torch.from_numpy(ids)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        T = self.block_size
        x = torch.zeros(T, dtype=torch.long)
        y = torch.full((T,), IGNORE_INDEX, dtype=torch.long)
        xs = self._stream(k * T, k * T + T)
        ys = self._stream(k * T + 1, k * T + T + 1)
        x[: len(xs)] = xs
        y[: len(ys)] = ys
        return x, y

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = [self[k] for k in indices]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


class StreamWindows(Dataset):
    """A split as `streams` contiguous streams read side by side, window after window, for
    networks that carry their state from one window to the next (an LSTM): item j * streams + b
    is window j of stream b, so batch j holds window j of every stream, and each row continues
    the same row of the batch before. Items are (x, y, first): `first` marks a stream's first
    window, where the carried state starts afresh.

    eval=True scores every target exactly once: the split (after a leading bos) is cut into
    equal streams, the last padded with IGNORE_INDEX targets. For training the tail that does not
    fill a window is left out, as TrainWindows leaves out a partial window.
    """

    def __init__(self, ids: np.ndarray | torch.Tensor, block_size: int, streams: int, *, eval: bool, eot_id: int = 0):
        T, B = block_size, streams
        if eval:
            stream = np.concatenate([np.array([eot_id], dtype=np.int64), np.asarray(ids, dtype=np.int64)])
            n = len(stream) - 1
            length = -(-n // B)
            length = -(-length // T) * T  # whole windows
            x = np.zeros(B * length, dtype=np.int64)
            y = np.full(B * length, IGNORE_INDEX, dtype=np.int64)
            x[:n], y[:n] = stream[:-1], stream[1:]
            self.x, self.y = torch.from_numpy(x).view(B, length), torch.from_numpy(y).view(B, length)
        else:
            length = (len(ids) - 1) // B // T * T
            if length == 0:
                raise GenkitError(
                    f"The training split has {len(ids)} tokens: too few for {B} streams of one window of {T}; lower "
                    f"data.batch_size or data.block_size."
                )
            if isinstance(ids, torch.Tensor):
                self.x, self.y = ids[: B * length].view(B, length), ids[1 : B * length + 1].view(B, length)
            else:  # the memory-mapped split, viewed as B streams by each batch (_stream_views)
                self.ids, self.x = ids, None
        self.length = length
        self.block_size, self.streams, self.windows = T, B, length // T

    def __len__(self) -> int:
        return self.windows * self.streams

    def _stream_views(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) as (streams, length) views of a map of the split opened for this batch
        (token_files.mapped_again says why): a batch reads its windows, the split stays on disk."""
        ids, n = mapped_again(self.ids), self.streams * self.length
        return ids[:n].reshape(self.streams, self.length), ids[1 : n + 1].reshape(self.streams, self.length)

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        k = torch.as_tensor(indices)
        window, stream = k // self.streams, k % self.streams
        cols = window[:, None] * self.block_size + torch.arange(self.block_size)  # (n, T)
        if self.x is None:
            rows, cols = stream[:, None].numpy(), cols.numpy()
            x, y = (torch.from_numpy(np.asarray(a[rows, cols], dtype=np.int64)) for a in self._stream_views())
            return x, y, window == 0
        rows = stream[:, None].to(self.x.device)
        cols = cols.to(self.x.device)
        return self.x[rows, cols], self.y[rows, cols], (window == 0).to(self.x.device)

    def __getitem__(self, i: int):
        x, y, first = self.__getitems__([i])
        return x[0], y[0], first[0]


def write_text(samples: list[str], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(f"--- sample {i} ---\n{s}" for i, s in enumerate(samples)) + "\n")
    return path


@lru_cache
def starting_tokenizer(path: Path):
    """The tokenizer a text run saved in its checkpoint: fine-tuning data is encoded with it, so
    token ids mean what they meant to the starting model. Whichever data module saved it
    (data=text, data=pairs, data=hf_text, ...): the state that holds a tokenizer."""
    states = [s for s in load_checkpoint(path).values() if isinstance(s, Mapping) and "tokenizer" in s]
    if not states:
        raise GenkitError(
            f"{path} carries no tokenizer (it is not a run on text), so text cannot be encoded as its model "
            f"expects; start from a language model's run (model=lm)."
        )
    return tokenizer_from_json(json.loads(states[0]["tokenizer"]))


class TextDataModule(GenkitDataModule):
    """Token streams for language models.

    The text comes either from named files per split (`splits: {train: ptb.train.txt, ...}`,
    fetched like any data set) or from one source (`files` of a data set, or a user's `path`)
    cut by `fractions` (`{train: 0.9, val: 0.1}`: the first 90% of the characters, then the rest).
    A split without text (e.g. no test set) falls back to val.
    """

    modality = "text"
    throughput_unit = "tokens"
    sample_suffix = ".txt"
    input_options = {"prompt_ids": {"prompt": Option("", "the text to continue", TEXT, shown='prompt="..."')}}
    # `files` and `mirrors` are a built-in data set's, under the data root (genkit's own config
    # replaces them on restore); `path` is the user's
    file_keys = ("path",)
    shards = ("tokens", "genkit.data.token_shards:write_shards", "text_shards")

    def __init__(
        self,
        name: str,
        tokenizer: str,
        vocab_size: int,
        block_size: int,
        files: Mapping[str, str] | None = None,
        mirrors: Sequence[str] = (),
        splits: Mapping[str, str] | None = None,
        fractions: Mapping[str, float] | None = None,
        path: str | None = None,
        pretrained_tokenizer: str | None = None,
        root: str | None = None,
        folder: str | None = None,
        cache_dir: str | None = None,
        batch_size: int = 32,
        eval_batch_size: int = 32,
        num_workers: int = 0,
        max_device_batch: int | None = None,
        on_device: str | bool = "auto",
        seed: int = 12345,
        token_unit: str | None = None,
        lowercase: bool = False,
        unknown_chars: str = "error",
        streams: bool = False,
        encoding: str | None = None,
        num_proc: int | None = None,
        fit_chars: int = FIT_CHARS,
    ):
        super().__init__()
        if num_proc is not None:
            _check_count("num_proc", num_proc, 1, "worker processes that encode the text; null: one per core")
        _check_count("fit_chars", fit_chars, 1000, "characters of the training text that a BPE tokenizer is fitted on")
        # preparation: encoding processes, and the sample a BPE tokenizer is fitted on (token_files)
        self.num_proc = num_proc or default_num_proc()
        self.fit_chars = fit_chars
        check_encoding(encoding)
        # the encoding of the user's text files when it is not UTF-8 (genkit.data.text_files)
        self.encoding = encoding
        if tokenizer not in KINDS:
            raise GenkitError(f"data.tokenizer={tokenizer!r}: choose one of {', '.join(KINDS)}.")
        if not isinstance(lowercase, bool):
            raise GenkitError(f"data.lowercase={lowercase!r} must be true or false.")
        if unknown_chars not in ("error", "drop") and len(str(unknown_chars)) != 1:
            raise GenkitError(
                f"data.unknown_chars={unknown_chars!r}: choose error, drop, or one character to put in their place."
            )
        if (splits is None) == (fractions is None):
            raise GenkitError("A text data config needs exactly one of `splits` (a file per split) or `fractions`.")
        self.name, self.tokenizer_kind, self.vocab_size = name, tokenizer, vocab_size
        self.block_size = block_size
        self.files, self.mirrors = dict(files or {}), list(mirrors)
        self.splits, self.fractions = dict(splits or {}), dict(fractions or {})
        self.path = Path(path).expanduser() if path else None
        self.pretrained_tokenizer = pretrained_tokenizer
        check_plain_name(name, "data.name")
        check_plain_name(folder or name, "data.folder")
        self.folder = resolve_root(root) / (folder or name)
        self.cache_root = Path(cache_dir).expanduser() if cache_dir else default_data_root().parent / "tokens"
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.max_device_batch, self.on_device, self.seed = max_device_batch, on_device, seed
        self.token_unit = token_unit or tokenizer
        self.lowercase, self.unknown_chars = bool(lowercase), str(unknown_chars)
        if not isinstance(streams, bool):
            raise GenkitError(f"data.streams={streams!r} must be true or false.")
        # batches as side-by-side contiguous streams (StreamWindows), for networks that carry state
        self.streams = streams
        self.tokenizer = None
        self.tokenizer_from_checkpoint = False
        self.ids: dict[str, np.ndarray] = {}

    # ---- preparation: read, tokenise, cache -------------------------------------------------

    def _sources(self) -> list[Path]:
        if self.path is not None:
            if not self.path.exists():
                raise GenkitError(f"data.path={self.path} does not exist; give a text file or a folder of them.")
            return sorted(p for p in self.path.rglob("*") if p.is_file()) if self.path.is_dir() else [self.path]
        return list(ensure_files(self.folder, self.files, self.mirrors, dataset=self.name).values())

    def _split_ranges(self) -> dict[str, SplitRange]:
        """Each split's characters, read in pieces: a file per split, or one text (a file, a
        folder's files joined by line breaks, a data set's files) cut by data.fractions."""
        if self.splits:
            paths = {p.name: p for p in self._sources()}
            return {split: whole(FileStream.of(paths[name], self.encoding)) for split, name in self.splits.items()}
        if self.path is not None:
            stream = FileStream.of(self.path, self.encoding)
        else:
            stream = FileStream(self._sources(), self.encoding)
        return cut_stream(stream, self.fractions)

    def _empty_train_message(self) -> str:
        return (
            f"The training text of {self.name} is empty ({self.path or self.folder}); give data.path a file or "
            f"folder with text in it."
        )

    def _given_tokenizer(self):
        """The tokenizer this data must be encoded with, if not fitted to it: a checkpoint's own
        (set by load_state_dict), a starting genkit run's, or a Hugging Face checkpoint's."""
        if self.tokenizer is not None and self.tokenizer_from_checkpoint:
            return self.tokenizer
        if not self.pretrained_tokenizer:
            return None
        source = starting_checkpoint(self.pretrained_tokenizer)
        if source is not None:
            self.source_tokenizer = source
            return starting_tokenizer(source)
        return BPETokenizer.from_pretrained(pretrained_dir(self.pretrained_tokenizer))

    def _encodable(self, text: str, tokenizer, split: str) -> str:
        """The text as a character tokenizer can encode it: characters outside its vocabulary
        dropped or replaced if data.unknown_chars asks, else a clear error."""
        if tokenizer.kind != "char":
            return text
        unknown = sorted(set(text) - tokenizer.stoi.keys())
        if not unknown:
            return text
        if self.unknown_chars == "error":
            source = getattr(self, "source_tokenizer", None)
            whose = f"the vocabulary of the starting run {source}" if source else "the vocabulary of its run"
            count = sum(text.count(c) for c in unknown)
            hint = " data.lowercase=true maps capitals to small letters;" if any(c.isupper() for c in unknown) else ""
            raise GenkitError(
                f"The {split} text of {self.name} cannot be encoded with {whose}: {len(unknown)} of its characters "
                f"({count} occurrences) are not in it: {''.join(unknown)!r}.{hint} data.unknown_chars=drop leaves "
                f"them out, and data.unknown_chars='<c>' puts the character <c> (one of the vocabulary) in their place."
            )
        if self.unknown_chars == "drop":
            return text.translate({ord(c): None for c in unknown})
        if self.unknown_chars not in tokenizer.stoi:
            raise GenkitError(
                f"data.unknown_chars={self.unknown_chars!r} is not in the vocabulary either; pick one of "
                f"{''.join(tokenizer.itos)!r}, or drop."
            )
        return text.translate({ord(c): self.unknown_chars for c in unknown})

    def cache_dir(self) -> Path:
        """The cache folder for this data, named by the checksum of its sources and settings
        (worked out once: a checksum reads every source file)."""
        if getattr(self, "_cache_dir", None) is None:
            self._cache_dir = self._cache_dir_by_checksum()
        return self._cache_dir

    def _cache_dir_by_checksum(self) -> Path:
        key = {
            "version": CACHE_VERSION,
            "tokenizer": self.tokenizer_kind,
            "vocab_size": self.vocab_size,
            "splits": self.splits,
            "fractions": self.fractions,
            "sources": [sha256_of(p) for p in self._sources()],
        }
        if self.lowercase or self.unknown_chars != "error":
            key.update(lowercase=self.lowercase, unknown_chars=self.unknown_chars)
        if self.encoding:
            key["encoding"] = self.encoding
        if self.fit_chars != FIT_CHARS and self.tokenizer_kind == "bpe":
            key["fit_chars"] = self.fit_chars
        given = self._given_tokenizer()
        if given is not None:
            key["tokenizer_json"] = hashlib.sha256(json.dumps(given.to_json()).encode()).hexdigest()
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        return self.cache_root / f"{self.name}-{digest}"

    def prepare_data(self) -> None:
        """Tokenise the text once into the cache (genkit.data.token_files: in pieces, in
        data.num_proc processes, resumable); runs that start together wait for one another."""
        from filelock import FileLock

        cache = self.cache_dir()
        if (cache / "meta.json").is_file():
            return
        cache.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(cache.with_name(f".{cache.name}.lock"))):
            if not (cache / "meta.json").is_file():
                self._prepare(cache)

    def _prepare(self, cache: Path) -> None:
        ranges = self._split_ranges()
        transform = str.lower if self.lowercase else _unchanged
        if not any(text.strip() for text, _, _ in pieces(ranges["train"])):
            raise GenkitError(self._empty_train_message())
        partial = PartialCache(cache)
        tokenizer = self._tokenizer_for(partial, ranges["train"], transform)
        excess = tokenizer.vocab_size - self.vocab_size
        if self.tokenizer_kind == "word" and excess > 1000 and tokenizer.vocab_size > 1.5 * self.vocab_size:
            shutil.rmtree(partial.folder, ignore_errors=True)
            raise GenkitError(
                f"The {self.name} text has {tokenizer.vocab_size} distinct words, far more than its "
                f"{self.vocab_size}-word vocabulary: the files are probably not the data set they claim to be "
                f"(junk appended, or another corpus). Check them against the official ones (sha256sum) in "
                f"{self.folder} before you raise data.vocab_size."
            )
        if tokenizer.vocab_size > self.vocab_size:
            shutil.rmtree(partial.folder, ignore_errors=True)
            raise GenkitError(
                f"The {self.name} tokenizer has {tokenizer.vocab_size} tokens but data.vocab_size is "
                f"{self.vocab_size}; set data.vocab_size={tokenizer.vocab_size}."
            )
        dtype = np.dtype(np.uint16 if self.vocab_size <= 1 << 16 else np.uint32).name
        meta = {"vocab_size": tokenizer.vocab_size, "dtype": dtype, "tokens": {}}
        encoder = Encoder(tokenizer, dtype, self.num_proc)
        try:
            for split, rng in ranges.items():
                encodable = functools.partial(self._transformed, transform, tokenizer, split)
                meta["tokens"][split] = write_split(partial, split, rng, encoder, encodable, self.name)
                if meta["tokens"][split] == 0:
                    shutil.rmtree(partial.folder, ignore_errors=True)
                    sizes = {name: r.chars for name, r in ranges.items()}
                    raise GenkitError(empty_split_message(self.name, split, sizes, self.fractions, self.block_size))
        finally:
            encoder.close()
        partial.finish(meta)
        log.info("Tokenised %s: %s tokens, cached in %s", self.name, meta["tokens"], cache)

    def _transformed(self, transform, tokenizer, split: str, text: str) -> str:
        return self._encodable(transform(text), tokenizer, split)

    def _tokenizer_for(self, partial: PartialCache, train: SplitRange, transform):
        """The tokenizer an interrupted preparation had fitted, a given one, or one fitted now."""
        saved = partial.folder / "tokenizer.json"
        if saved.is_file():
            return load_tokenizer(saved)
        tokenizer = self._given_tokenizer()
        if tokenizer is None:
            tokenizer = fit_tokenizer(self.tokenizer_kind, train, self.vocab_size, self.fit_chars, transform)
        save_tokenizer(tokenizer, saved)
        return tokenizer

    def setup(self, stage: str | None = None) -> None:
        if self.ids:
            return
        cache = self.cache_dir()
        if not (cache / "meta.json").is_file():
            self.prepare_data()
        meta = json.loads((cache / "meta.json").read_text())
        self.tokenizer = load_tokenizer(cache / "tokenizer.json")
        for split, count in meta["tokens"].items():
            self.ids[split] = np.memmap(cache / f"{split}.bin", dtype=meta["dtype"], mode="r", shape=(count,))

    # ---- loaders ------------------------------------------------------------------------------

    def _split(self, split: str) -> np.ndarray:
        return self.ids[split] if split in self.ids else self.ids["val"]

    def train_dataloader(self) -> DataLoader:
        ids = self.ids["train"]
        device = data_device(self.trainer, self.on_device, len(ids) * 8)
        if device is not None:  # the token stream on the GPU: windows are gathered there
            ids = torch.from_numpy(np.asarray(ids).astype(np.int64)).to(device)
        workers = 0 if device is not None else self.num_workers
        batch = per_process(self.trainer, self.batch_size)
        if self.streams:
            self._check_streams()
            windows = StreamWindows(ids, self.block_size, self.batch_size, eval=False)
            return self.training_loader(windows, batch, self.seed, workers, shuffle=False)
        return self.training_loader(TrainWindows(ids, self.block_size), batch, self.seed, workers)

    def _check_streams(self) -> None:
        steps = self.trainer.accumulate_grad_batches if self.trainer is not None else 1
        if steps > 1:
            raise GenkitError(
                f"data.streams=true carries each row's state from one batch to the next, but data.max_device_batch="
                f"{self.max_device_batch} splits each batch of {self.batch_size} into {steps} accumulation steps; "
                f"set data.max_device_batch=null (or a smaller data.batch_size), or data.streams=false."
            )

    def _eval_loader(self, split: str) -> DataLoader:
        if self.streams:
            windows = StreamWindows(self._split(split), self.block_size, self.eval_batch_size, eval=True,
                                    eot_id=self.tokenizer.eot_id)  # fmt: skip
            return self.evaluation_loader(windows, self.eval_batch_size, self.num_workers)
        windows = EvalWindows(self._split(split), self.block_size, self.tokenizer.eot_id)
        return self.evaluation_loader(windows, self.eval_batch_size, self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    # ---- the data contract: text in, text out -------------------------------------------------

    def state_dict(self) -> dict:
        """The tokenizer, saved in every checkpoint: sampling a checkpoint needs no corpus."""
        return {"tokenizer": json.dumps(self.tokenizer.to_json())} if self.tokenizer is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if "tokenizer" in state:
            self.tokenizer = tokenizer_from_json(json.loads(state["tokenizer"]))
            self.tokenizer_from_checkpoint = True
            self._cache_dir = None  # the cache is keyed by the tokenizer text is encoded with

    def save_artifacts(self, run_dir: Path) -> None:
        if self.tokenizer is not None:
            save_tokenizer(self.tokenizer, run_dir / "tokenizer.json")

    def sample_input(self, name: str, n: int, options: Mapping) -> list[int]:
        if name == "prompt_ids":
            return self.prompt_ids(options.get("prompt") or "")
        return super().sample_input(name, n, options)

    def samples_as_text(self, samples: torch.Tensor) -> list[str]:
        return self.decode_batch(samples)

    def chat_template(self) -> str:
        """What a chat becomes before its prompt is encoded (genkit.data.chat): the Hugging Face
        tokenizer's own template when it came with one, else genkit's."""
        if self.tokenizer is None:
            self.setup()
        return getattr(self.tokenizer, "chat_template", None) or GENKIT_CHAT_TEMPLATE

    def end_of_turn_ids(self) -> list[int]:
        """The tokens that end an answer to a chat: the boundary token, and the template's own."""
        if self.tokenizer is None:
            self.setup()
        end = getattr(self.tokenizer, "end_of_turn", None)
        own = self.tokenizer.tokenizer.token_to_id(end) if end else None
        return [self.tokenizer.eot_id, *([own] if own is not None else [])]

    def write_samples(self, samples: torch.Tensor, path: str | Path, inputs: Mapping | None = None) -> Path:
        return write_text(self.decode_batch(samples), with_suffix(path, self.sample_suffix))

    def items_per_sample(self) -> int:
        return self.block_size

    def reference_data(self) -> dict[str, torch.Tensor]:
        self.setup()
        return {split: torch.from_numpy(np.asarray(self._split(split)).astype(np.int64)) for split in ("train", "val")}

    def prompt_ids(self, prompt: str = "") -> list[int]:
        """The boundary token followed by the prompt's ids: what generation starts from."""
        if self.tokenizer is None:
            self.setup()
        prompt = prompt.lower() if self.lowercase else prompt
        return [self.tokenizer.eot_id, *self.tokenizer.encode_prompt(self._encodable(prompt, self.tokenizer, "prompt"))]

    def decode_batch(self, ids: torch.Tensor) -> list[str]:
        """Decode generated rows, dropping the leading boundary token."""
        if self.tokenizer is None:
            self.setup()
        return [self.tokenizer.decode(row[1:].tolist()) for row in ids]
