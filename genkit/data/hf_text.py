"""Text from a Hugging Face dataset (`data=hf_text`, `data=wikitext2`), tokenised and cached as
any text data set is (genkit.data.text).

The dataset is loaded with `datasets.load_dataset`, so the Hugging Face cache, tokens and
HF_DATASETS_OFFLINE=1 behave as their users know them; a folder written by `save_to_disk`
is read with `datasets.load_from_disk`. Its splits train / validation / test become genkit's
train / val / test; a dataset without a validation split has its train split cut by
`data.fractions`, as `data=text` cuts a file.
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
    files: a row is a line, and rows that keep their own line break (WikiText's) do not get a
    second one, so the word tokenizer's one <eos> per line gives the published token counts."""

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
        **options,
    ):
        super().__init__(**options)
        self.dataset, self.config, self.column = str(dataset), config, column
        self.data_files, self.revision = data_files, revision
        self.local_copy = self.folder if options.get("folder") else None
        self._hf_splits: dict | None = None

    # ---- loading ------------------------------------------------------------------------------

    def _source(self) -> Path | None:
        """The save_to_disk folder to read, if the data comes from one."""
        given = Path(self.dataset).expanduser()
        if given.is_dir():
            return given if _saved_to_disk(given) else None
        if self.local_copy is not None and _saved_to_disk(self.local_copy):
            return self.local_copy
        return None

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
            return datasets.load_dataset(self.dataset, self.config, data_files=self.data_files, revision=self.revision)
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
        """genkit split -> the Hugging Face split (a datasets.Dataset), loaded once per module."""
        if self._hf_splits is not None:
            return self._hf_splits
        loaded = self._load()
        if not hasattr(loaded, "keys"):  # one Dataset, saved without splits: it is the train split
            loaded = {"train": loaded}
        splits = {}
        for split, names in SPLIT_NAMES.items():
            name = next((n for n in names if n in loaded), None)
            if name is not None:
                splits[split] = loaded[name]
        if "train" not in splits:
            raise GenkitError(
                f"{self.dataset} has no train split (its splits: {', '.join(loaded.keys())}); genkit trains on "
                f"a split named train."
            )
        for split, ds in splits.items():
            if self.column not in ds.column_names:
                raise GenkitError(
                    f"data.column={self.column} is not a column of {self.dataset} ({split} split); its columns are "
                    f"{', '.join(ds.column_names)}. Pass data.column=<the one holding the text>."
                )
            dtype = getattr(ds.features[self.column], "dtype", None)
            if dtype not in ("string", "large_string"):
                raise GenkitError(
                    f"data.column={self.column} of {self.dataset} holds {ds.features[self.column]}, not text; "
                    f"pass data.column=<a column of strings> (its columns: {', '.join(ds.column_names)})."
                )
        self._hf_splits = splits
        return splits

    # ---- what TextDataModule reads and keys its cache by ----------------------------------------

    def _sources(self) -> list[Path]:
        return []  # no files to checksum: the datasets' fingerprints key the cache (cache_dir)

    def _split_ranges(self) -> dict[str, SplitRange]:
        splits = self.hf_splits()
        ranges = {split: whole(RowsStream(ds, self.column)) for split, ds in splits.items() if split != "train"}
        if "val" in ranges:
            return {"train": whole(RowsStream(splits["train"], self.column)), **ranges}
        # cut from train, with the test split too when the dataset lacks one, in proportion to
        # each other: the fractions left after dropping the splits it has
        cut = {split: f for split, f in self.fractions.items() if split == "train" or split not in ranges}
        return {**cut_stream(RowsStream(splits["train"], self.column), cut, total=sum(cut.values())), **ranges}

    def _empty_train_message(self) -> str:
        return (
            f"The train split of {self.dataset} has no text in its {self.column!r} column "
            f"({self.hf_splits()['train'].num_rows} rows); check data.dataset, data.config and data.column."
        )

    def cache_dir(self) -> Path:
        """TextDataModule's key over the tokenizer and split settings, with the fingerprint of each
        split (which Hugging Face changes whenever the data, its revision or its files change)."""
        settings = super().cache_dir().name
        key = {
            "version": HF_CACHE_VERSION,
            "settings": settings,
            "column": self.column,
            "fingerprints": {split: ds._fingerprint for split, ds in self.hf_splits().items()},
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        return self.cache_root / f"{self.name}-{digest}"


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
