"""Text from a Hugging Face dataset (`data=hf_text`, `data=wikitext2`), tokenised and cached as
any text data set is (genkit.data.text).

The dataset is loaded with `datasets.load_dataset`, so the Hugging Face cache, tokens and
HF_DATASETS_OFFLINE=1 behave as their users know them; a folder written by `save_to_disk`
is read with `datasets.load_from_disk`. Its splits train / validation / test become genkit's
train / val / test; a dataset without a validation split has its train split cut by
`data.fractions`, as `data=text` cuts a file. With `data.streaming=true` a Hub dataset is not
downloaded first: its rows are read over the network as they are tokenised (an IterableDataset),
and only genkit's token cache is written.
"""

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from genkit.data.text import TextDataModule
from genkit.data.text_pieces import SplitRange, TextStream, cut_stream, whole
from genkit.errors import GenkitError

# the Hugging Face split names that fill each genkit split, first match wins
SPLIT_NAMES = {"train": ("train",), "val": ("validation", "valid", "dev"), "test": ("test",)}
# bump when the text made of the rows changes, so old token caches are not reused
HF_CACHE_VERSION = 1
# rows joined into one block of text at a time
ROWS_PER_BLOCK = 1000


def _saved_to_disk(folder: Path) -> bool:
    """Whether folder holds what Dataset(Dict).save_to_disk writes (load_dataset reads it too,
    but would build a second copy of it in the Hugging Face cache)."""
    return (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()


class RowsStream(TextStream):
    """A column's rows as lines, read a batch of rows at a time from datasets' memory-mapped Arrow
    files, or over the network from a streamed dataset (an IterableDataset has the same
    `select_columns` and `iter(batch_size=...)`; each `blocks()` is a new pass): a row is a line,
    and rows that keep their own line break (WikiText's) do not get a second one, so the word
    tokenizer's one <eos> per line gives the published token counts."""

    def __init__(self, dataset, column: str):
        self.dataset, self.column = dataset, column

    def blocks(self) -> Iterator[str]:
        first = True
        for batch in self.dataset.select_columns([self.column]).iter(batch_size=ROWS_PER_BLOCK):
            text = "\n".join((row or "").removesuffix("\n") for row in batch[self.column])
            yield text if first else "\n" + text
            first = False


class HFTextDataModule(TextDataModule):
    """Token streams from one text column of a Hugging Face dataset.

    dataset: a Hub name (`Salesforce/wikitext`), a local folder (save_to_disk's, or one of data
    files), or a packaged builder (`text`, `json`, `parquet`, `csv`) with `data_files`.
    config: the dataset's config (its subset); ignored for a save_to_disk folder.
    streaming: read the rows over the network as they are tokenised (`load_dataset(...,
    streaming=True)`) instead of downloading the whole dataset into the Hugging Face cache first.
    Preparation then reads the stream several times (a pass to count its characters, one to fit
    the tokenizer, one per split written), each over the network. A streamed dataset has no
    fingerprint: its token cache is keyed by its name, config, revision, data files, column and
    split names, so a Hub dataset whose revision is not pinned (data.revision) is read again only
    under a new revision or after its token cache is deleted, not when it changes on the Hub.
    folder: with root (data.root, else $GENKIT_DATA_DIR), where a save_to_disk copy of a named
    data set may wait, used before the Hub, as genkit's other data sets are found on disk.
    Every other option is TextDataModule's; `fractions` cut train when there is no validation split.
    """

    # a Hub name is signed like a folder: whether `dataset` names a folder of the user's is only
    # known by looking, and a stranger's checkpoint must not make genkit look
    file_keys = ("dataset", "data_files")

    def __init__(
        self,
        dataset: str,
        config: str | None = None,
        column: str = "text",
        data_files: str | Sequence[str] | Mapping[str, str | Sequence[str]] | None = None,
        revision: str | None = None,
        streaming: bool = False,
        **options,
    ):
        super().__init__(**options)
        if not isinstance(streaming, bool):
            raise GenkitError(
                f"data.streaming={streaming!r} must be true or false (true reads a Hub dataset's rows over the "
                f"network as they are tokenised, without downloading it first)."
            )
        self.dataset, self.config, self.column = str(dataset), config, column
        self.streaming = streaming
        self.data_files, self.revision = data_files, revision
        self.local_copy = self.folder if options.get("folder") else None
        self._hf_splits: dict | None = None
        self._hf_names: dict[str, str] = {}  # genkit split -> the Hugging Face split's name

    # ---- loading ------------------------------------------------------------------------------

    def _source(self) -> Path | None:
        """The save_to_disk folder to read, if the data comes from one."""
        given = Path(self.dataset).expanduser()
        if given.is_dir():
            return given if _saved_to_disk(given) else None
        if self.local_copy is not None and _saved_to_disk(self.local_copy):
            return self.local_copy
        return None

    def _streamed(self) -> bool:
        """Whether the rows are read as a stream: data.streaming=true, unless a save_to_disk folder
        is read, which streaming would not spare a download (it is on disk, memory-mapped) and
        whose fingerprints key the cache better than its name would."""
        return self.streaming and self._source() is None

    def _load(self):
        import datasets  # here, not at the top: importing it takes a second that `genkit --help` must not

        folder = self._source()
        if folder is not None:
            return datasets.load_from_disk(str(folder))
        if Path(self.dataset).expanduser().is_file():  # load_dataset would look for it on the Hub
            raise GenkitError(
                f"data.dataset={self.dataset} is a file; name the builder that reads it and give the file: "
                f"data.dataset=text (or json, csv, parquet) data.data_files={self.dataset}."
            )
        try:
            files, revision, streaming = self.data_files, self.revision, self._streamed()
            return datasets.load_dataset(
                self.dataset, self.config, data_files=files, revision=revision, streaming=streaming
            )
        except ConnectionError as err:
            raise GenkitError(self._unreachable(err, datasets.config.HF_HUB_OFFLINE)) from None
        except FileNotFoundError as err:  # also datasets' DatasetNotFoundError, DataFilesNotFoundError
            raise GenkitError(
                f"{self._given()} cannot be found ({type(err).__name__}: {_first_line(err)}). Give the name of a "
                f"dataset on the Hugging Face Hub (e.g. Salesforce/wikitext), a folder written by save_to_disk or "
                f"holding data files, or a builder with its files (data.dataset=text data.data_files=<file>)."
            ) from None
        except ValueError as err:
            if "BuilderConfig" not in str(err) and "Config name is missing" not in str(err):
                raise
            raise GenkitError(self._bad_config(datasets)) from None

    def _given(self) -> str:
        files = f" with data.data_files={self.data_files}" if self.data_files else ""
        return f"data.dataset={self.dataset}{files}"

    def _unreachable(self, err: Exception, offline: bool) -> str:
        why = "offline mode (HF_DATASETS_OFFLINE or HF_HUB_OFFLINE is set)" if offline else "no network"
        here = f" A save_to_disk copy in {self.local_copy} is read too." if self.local_copy is not None else ""
        if self._streamed():
            return (
                f"{self._given()} with data.streaming=true reads its rows from the Hub as they are tokenised, and "
                f"{why} stopped it ({_first_line(err)}). Run with the network (and without the offline variables), "
                f"or point data.dataset at a local copy: a folder written by datasets' save_to_disk, or a folder of "
                f"its data files.{here}"
            )
        return (
            f"{self._given()} is not a local folder nor in the Hugging Face cache, and {why} stopped its "
            f"download ({_first_line(err)}). Run once with the network (and without the offline variables) to "
            f"fill the cache (HF_HOME), or point data.dataset at a local copy: a folder written by datasets' "
            f"save_to_disk, or a folder of its data files.{here}"
        )

    def _bad_config(self, datasets) -> str:
        try:  # the module was found a moment ago, so this needs no network either
            names = datasets.get_dataset_config_names(self.dataset, data_files=self.data_files, revision=self.revision)
            known = f"its configs: {', '.join(names)}"
        except Exception:  # whatever stops the listing, the message still says what is wrong
            known = "its dataset card lists its configs"
        if self.config is None:
            return f"data.config is not set, and {self.dataset} has several configs ({known}); pass data.config=<one>."
        return f"data.config={self.config} is not a config of {self.dataset} ({known}); pass data.config=<one of them>."

    def hf_splits(self) -> dict:
        """genkit split -> the Hugging Face split (a datasets.Dataset, or an IterableDataset when
        streamed), loaded once per module."""
        if self._hf_splits is not None:
            return self._hf_splits
        loaded = self._load()
        if not hasattr(loaded, "keys"):  # one Dataset, saved without splits: it is the train split
            loaded = {"train": loaded}
        splits, self._hf_names = {}, {}
        for split, names in SPLIT_NAMES.items():
            name = next((n for n in names if n in loaded), None)
            if name is not None:
                splits[split], self._hf_names[split] = loaded[name], name
        if "train" not in splits:
            raise GenkitError(
                f"{self.dataset} has no train split (its splits: {', '.join(loaded.keys())}); genkit trains on "
                f"a split named train."
            )
        for split, ds in splits.items():
            self._check_column(split, ds)
        self._hf_splits = splits
        return splits

    def _check_column(self, split: str, ds) -> None:
        """data.column is a column of strings: by the split's features, or, for a streamed split
        whose features are unknown until read (the text builder's), by its first row."""
        if ds.features is not None:
            columns = list(ds.features)
            held = ds.features.get(self.column)
            text = getattr(held, "dtype", None) in ("string", "large_string")
        else:
            row = next(iter(ds), None)
            if row is None:  # no rows: preparation says that the train split has no text
                return
            columns, value = list(row), row.get(self.column)
            held, text = type(value).__name__, value is None or isinstance(value, str)
        if self.column not in columns:
            raise GenkitError(
                f"data.column={self.column} is not a column of {self.dataset} ({split} split); its columns are "
                f"{', '.join(columns)}. Pass data.column=<the one holding the text>."
            )
        if not text:
            raise GenkitError(
                f"data.column={self.column} of {self.dataset} holds {held}, not text; "
                f"pass data.column=<a column of strings> (its columns: {', '.join(columns)})."
            )

    # ---- what TextDataModule reads and keys its cache by ----------------------------------------

    def _sources(self) -> list[Path]:
        return []  # no files to checksum: the datasets' fingerprints (or names, streamed) key the cache

    def _split_ranges(self) -> dict[str, SplitRange]:
        splits = self.hf_splits()
        ranges = {split: whole(RowsStream(ds, self.column)) for split, ds in splits.items() if split != "train"}
        if "val" in ranges:
            return {"train": whole(RowsStream(splits["train"], self.column)), **ranges}
        # cut from train, with the test split too when the dataset lacks one, in proportion to
        # each other: the fractions left after dropping the splits it has
        cut = {split: f for split, f in self.fractions.items() if split == "train" or split not in ranges}
        # cut_stream counts the characters in a pass of their own first: a streamed train split is
        # read over the network once more (its size cannot be known before it is read)
        return {**cut_stream(RowsStream(splits["train"], self.column), cut, total=sum(cut.values())), **ranges}

    def _empty_train_message(self) -> str:
        train = self.hf_splits()["train"]
        rows = "" if self._streamed() else f" ({train.num_rows} rows)"  # a stream's rows are not counted
        return (
            f"The train split of {self.dataset} has no text in its {self.column!r} column{rows}; check "
            f"data.dataset, data.config and data.column."
        )

    def cache_dir(self) -> Path:
        """TextDataModule's key over the tokenizer and split settings, with the fingerprint of each
        split (which Hugging Face changes whenever the data, its revision or its files change).

        A streamed dataset has no fingerprint, and nothing of its rows is known before they are
        read: it is keyed by what names it (dataset, config, revision, data files, split names). A
        Hub dataset whose revision is not pinned (data.revision) is therefore keyed by its name,
        and a changed dataset is read again only under a new revision or after its token cache is
        deleted; local data files streamed are keyed by their paths, not their contents (read
        them with data.streaming=false for that: they are on disk already)."""
        settings = super().cache_dir().name
        key = {"version": HF_CACHE_VERSION, "settings": settings, "column": self.column}
        splits = self.hf_splits()
        if self._streamed():
            key["streamed"] = {
                "dataset": self.dataset,
                "config": self.config,
                "revision": self.revision,
                "data_files": self.data_files,
                "splits": self._hf_names,
            }
        else:
            key["fingerprints"] = {split: ds._fingerprint for split, ds in splits.items()}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        return self.cache_root / f"{self.name}-{digest}"


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
