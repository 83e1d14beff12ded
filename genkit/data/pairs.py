"""Prompt -> completion records for fine-tuning a language model on a task (`data=pairs`).

Records come from JSON Lines, CSV or Parquet files, or a Hugging Face dataset; which fields
are the prompt and the completion is configurable (`data.prompt_key`, `data.completion_key`), so
`{"text": ..., "label": ...}` classification data trains by naming its keys. A chat record
(`{"messages": [{"role": ..., "content": ...}, ...]}`) is flattened by genkit.data.records.chat_pair.

Each record becomes one row: [eot] + prompt + separator, then completion + [eot], where eot is the
tokenizer's boundary token (`<|endoftext|>` for BPE, `<eos>` for words, a newline for
characters). Targets are IGNORE_INDEX except on the completion and its closing eot, so the loss
counts only completion tokens (the prompt gets no gradient). A batch is right-padded to its
longest row with IGNORE_INDEX targets: the networks are causal, so a real position never sees
the padding after it and needs no attention mask.

When the completions form a closed set (at most `data.max_labels` distinct values in the training
split, each seen five times on average) the task is a label task: genkit eval then reports a
classification report and picks labels by their likelihood (genkit/metrics/text_tasks.py).
"""

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from genkit.checkpoints.hub import pretrained_dir
from genkit.checkpoints.starting_weights import starting_checkpoint
from genkit.data.base import GenkitDataModule, with_suffix
from genkit.data.batching import per_process
from genkit.data.chat import GENKIT_CHAT_TEMPLATE
from genkit.data.download import default_data_root, sha256_of
from genkit.data.pair_rows import (
    PAIR_CACHE_VERSION,
    PairBatches,
    PairRows,
    PairRowsWriter,
    read_records,
    write_records,
)
from genkit.data.records import MAX_RECORD_BYTES, SPLIT_FILES, SUFFIXES, Pairs, iter_rows, normalise
from genkit.data.text import starting_tokenizer, write_text
from genkit.data.token_files import finish_cache
from genkit.data.tokenizers import (
    KINDS,
    UNK,
    BPETokenizer,
    WordTokenizer,
    load_tokenizer,
    save_tokenizer,
    tokenizer_from_json,
)
from genkit.errors import GenkitError, first_line
from genkit.options import TEXT, Option

log = logging.getLogger(__name__)


def _file_rows(path: Path, max_bytes: int) -> Callable[[], Iterator[tuple[str, Any]]]:
    return lambda: iter_rows(path, max_bytes)


def _dataset_rows(dataset: str, name: str, ds) -> Callable[[], Iterator[tuple[str, Any]]]:
    """A Hugging Face split's rows, a thousand at a time from its memory-mapped Arrow files."""

    def rows() -> Iterator[tuple[str, Any]]:
        number = 0
        for batch in ds.iter(batch_size=1000):
            for values in zip(*batch.values(), strict=True):
                number += 1
                yield f"{dataset} {name} row {number}", dict(zip(batch, values, strict=True))

    return rows


class PairsDataModule(GenkitDataModule):
    """Prompt -> completion records (see the module's docstring).

    path: a folder with train / val (or validation) / test files (.jsonl, .json, .csv or .parquet),
    or one file cut by `fractions` in record order; files: {train: <file>, val: ..., test: ...};
    dataset: a Hugging Face dataset (a Hub name or a local folder), read with datasets.
    A split that is missing falls back to val (test) or is cut from train by `fractions` (val).
    root: the machine's data folder, which genkit's own data sets live in; records are the user's
    own files, named by path, so it is not read.
    """

    modality = "text"
    throughput_unit = "tokens"
    sample_suffix = ".txt"
    input_options = {"prompt_ids": {"prompt": Option("", "the prompt to complete", TEXT, shown='prompt="..."')}}
    file_keys = ("path", "files", "dataset")
    shards = ("pairs", "genkit.data.pair_shards:write_shards", "pairs_shards")

    def __init__(
        self,
        name: str,
        tokenizer: str,
        vocab_size: int,
        block_size: int,
        path: str | None = None,
        files: Mapping[str, str] | None = None,
        dataset: str | None = None,
        dataset_config: str | None = None,
        fractions: Mapping[str, float] | None = None,
        prompt_key: str = "prompt",
        completion_key: str = "completion",
        separator: str = "",
        max_labels: int = 100,
        labels: Sequence[str] | None = None,
        pretrained_tokenizer: str | None = None,
        batch_size: int = 32,
        eval_batch_size: int = 64,
        num_workers: int = 0,
        max_device_batch: int | None = None,
        seed: int = 12345,
        token_unit: str | None = None,
        root: str | None = None,
        long_prompts: str = "error",
        group_by_length: bool = True,
        max_record_bytes: int = MAX_RECORD_BYTES,
        cache_dir: str | None = None,
    ):
        super().__init__()
        if tokenizer not in KINDS:
            raise GenkitError(f"data.tokenizer={tokenizer!r}: choose one of {', '.join(KINDS)}.")
        given = [k for k, v in (("path", path), ("files", files), ("dataset", dataset)) if v]
        if len(given) != 1:
            raise GenkitError(
                f"data=pairs needs exactly one source of records, got {', '.join(given) or 'none'}: data.path=<folder "
                f"or file>, data.files={{train: <file>, val: <file>, test: <file>}}, or data.dataset=<HF dataset>."
            )
        if labels is not None and (isinstance(labels, str) or not all(isinstance(x, str) for x in labels)):
            raise GenkitError(f"data.labels={labels!r} must be a list of label texts, e.g. [positive, negative].")
        self.name, self.tokenizer_kind, self.vocab_size = name, tokenizer, vocab_size
        self.block_size = block_size
        self.path = Path(path).expanduser() if path else None
        self.files = {k: Path(v).expanduser() for k, v in (files or {}).items()}
        self.dataset, self.dataset_config = dataset, dataset_config
        self.fractions = dict(fractions or {"train": 0.9, "val": 0.05, "test": 0.05})
        self.read = Pairs(prompt_key, completion_key)
        self.separator, self.max_labels = separator, max_labels
        self.given_labels = list(labels) if labels is not None else None
        if long_prompts not in ("error", "cut"):
            raise GenkitError(
                f"data.long_prompts={long_prompts!r}: choose error (stop at a prompt that does not fit "
                f"data.block_size) or cut (keep the end of such prompts, with one warning that counts them)."
            )
        self.long_prompts = long_prompts
        if not isinstance(group_by_length, bool):
            raise GenkitError(
                f"data.group_by_length={group_by_length!r} must be true (batch records of similar length, "
                f"padding less) or false (batches drawn from the whole shuffled split)."
            )
        self.group_by_length = group_by_length
        if not isinstance(max_record_bytes, int) or isinstance(max_record_bytes, bool) or max_record_bytes < 1:
            raise GenkitError(
                f"data.max_record_bytes={max_record_bytes!r} must be a whole number of bytes of at least 1: the "
                f"longest line of JSON Lines or CSV that is read (default {MAX_RECORD_BYTES}, 16 MiB), e.g. "
                f"data.max_record_bytes=67108864 for 64 MiB."
            )
        self.max_record_bytes = max_record_bytes
        self.pretrained_tokenizer = pretrained_tokenizer
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.max_device_batch, self.seed = max_device_batch, seed
        self.token_unit = token_unit or tokenizer
        self.tokenizer = None
        self.tokenizer_from_checkpoint = False
        # the encoded rows of each split (memory-mapped), and the records eval scores (val, test)
        self.records: dict[str, list[dict]] = {}
        self.rows: dict[str, PairRows] = {}
        self.cache_root = Path(cache_dir).expanduser() if cache_dir else default_data_root().parent / "pairs"
        self._hf_loaded: dict | None = None
        self.labels: list[str] | None = None
        # the most tokens a training completion took (with its eot): how long generation may run
        self.longest_completion = block_size

    # ---- reading ------------------------------------------------------------------------------

    def _split_files(self) -> dict[str, Path]:
        if self.files:
            unknown = set(self.files) - SPLIT_FILES.keys()
            if unknown or "train" not in self.files:
                raise GenkitError(
                    f"data.files={ {k: str(v) for k, v in self.files.items()} } must name a train file, and only "
                    f"train, val and test."
                )
            return dict(self.files)
        if not self.path.exists():
            raise GenkitError(f"data.path={self.path} does not exist; give a folder of train/val/test files or a file.")
        if self.path.is_file():
            return {"all": self.path}
        found = {}
        for split, stems in SPLIT_FILES.items():
            match = next((self.path / f"{s}{x}" for s in stems for x in SUFFIXES if (self.path / f"{s}{x}").is_file()),
                         None)  # fmt: skip
            if match is not None:
                found[split] = match
        if "train" not in found:
            raise GenkitError(
                f"data.path={self.path} holds no train file: name them train.jsonl, val.jsonl (or validation.jsonl) "
                f"and test.jsonl (or the same names in .csv / .parquet)."
            )
        return found

    def _hf_splits(self) -> dict[str, Any]:
        """genkit split -> (its Hugging Face name, the Dataset), loaded once per module."""
        if self._hf_loaded is not None:
            return self._hf_loaded
        import datasets  # here: importing it takes a second that other data need not pay

        folder = Path(self.dataset).expanduser()
        try:
            loaded = (datasets.load_from_disk(str(folder)) if (folder / "dataset_dict.json").is_file()
                      else datasets.load_dataset(self.dataset, self.dataset_config))  # fmt: skip
        except (ConnectionError, FileNotFoundError) as err:
            raise GenkitError(
                f"data.dataset={self.dataset} cannot be read ({first_line(err, 200)}); "
                f"give a local folder (save_to_disk's, or of data files) or a dataset in the Hugging Face cache."
            ) from None
        names = {"train": ("train",), "val": ("validation", "valid", "val", "dev"), "test": ("test",)}
        splits = {}
        for split, options in names.items():
            name = next((n for n in options if n in loaded), None)
            if name is not None:
                splits[split] = (name, loaded[name])
        if "train" not in splits:
            raise GenkitError(f"data.dataset={self.dataset} has no train split (its splits: {', '.join(loaded)}).")
        self._hf_loaded = splits
        return splits

    def _sources(self) -> dict[str, Callable[[], Iterator[tuple[str, Any]]]]:
        """Each split's records as a stream that can be read again: (where, row)."""
        if self.dataset:
            return {split: _dataset_rows(self.dataset, name, ds) for split, (name, ds) in self._hf_splits().items()}
        files = self._split_files()
        if "all" in files:
            files = {"train": files.pop("all")}
        return {split: _file_rows(file, self.max_record_bytes) for split, file in files.items()}

    def _split_ranges(self) -> dict[str, tuple[Callable, int, int | None]]:
        """split -> (its stream, first record, end): a split without val is cut from train in
        record order (counted in one pass), as data=text cuts a file; an empty val is train's last
        record."""
        sources = self._sources()
        ranges: dict[str, tuple[Callable, int, int | None]] = {
            split: (rows, 0, None) for split, rows in sources.items()
        }
        if "val" not in sources:
            cut = {s: f for s, f in self.fractions.items() if s == "train" or s not in sources}
            count, total, start = sum(1 for _ in sources["train"]()), sum(cut.values()), 0
            for split, fraction in cut.items():
                end = count if split == list(cut)[-1] else start + int(count * fraction / total)
                ranges[split] = (sources["train"], start, end)
                start = end
        if "val" not in ranges or ranges["val"][1] == ranges["val"][2]:  # no val: the last training record
            train_rows, _, train_end = ranges["train"]
            last = train_end if train_end is not None else sum(1 for _ in train_rows())
            ranges["val"] = (train_rows, last - 1, last)
        return ranges

    def _records(self, ranges, split: str) -> Iterator[dict]:
        """The split's records read and checked, as they stream past."""
        rows, start, end = ranges[split]
        for k, (where, row) in enumerate(rows()):
            if k < start:
                continue
            if end is not None and k >= end:
                return
            prompt, completion = self.read(where, row)
            yield {"prompt": prompt, "completion": completion, "where": where, "row": row}

    def text_records(self) -> dict[str, list[dict]]:
        """Every split's records as text, {prompt, completion}, read from the sources (not the token
        cache), and the label set the training split forms (self.labels; None: free text): what a
        baseline that reads words fits and is scored on (genkit.metrics.baseline). Held in memory."""
        ranges = self._split_ranges()
        completions = {"count": 0, "distinct": {}}
        splits = {"train": [{"prompt": r["prompt"], "completion": r["completion"]}
                            for r in self._counted(self._records(ranges, "train"), completions)]}  # fmt: skip
        self.labels = self._label_set(completions)
        known = set(self.labels) if self.given_labels is not None else None
        for split in ranges:
            if split != "train":
                splits[split] = []
                for r in self._records(ranges, split):
                    if known is not None:
                        self._check_label(r, split, known)
                    splits[split].append({"prompt": r["prompt"], "completion": r["completion"]})
        if self.labels:
            self.label_counts = [completions["distinct"].get(label, 0) for label in self.labels]
        return splits

    # ---- tokenising -------------------------------------------------------------------------

    def _given_tokenizer(self):
        """A checkpoint's own tokenizer, a starting genkit run's, or a Hugging Face checkpoint's."""
        if self.tokenizer is not None and self.tokenizer_from_checkpoint:
            return self.tokenizer
        if not self.pretrained_tokenizer:
            return None
        source = starting_checkpoint(self.pretrained_tokenizer)
        if source is None:
            return BPETokenizer.from_pretrained(pretrained_dir(self.pretrained_tokenizer))
        return starting_tokenizer(source)

    def _fit_tokenizer(self, train: Iterator[dict]):
        texts = (r["prompt"] + self.separator + r["completion"] + "\n" for r in train)
        tokenizer = KINDS[self.tokenizer_kind].fit_pieces(texts, self.vocab_size)
        if isinstance(tokenizer, WordTokenizer) and UNK not in tokenizer.stoi:
            # words first seen in val or test are read as <unk> instead of stopping the run
            tokenizer = WordTokenizer([*tokenizer.itos, UNK])
        return tokenizer

    def encode_prompt(self, prompt: str) -> list[int]:
        """[eot] + the prompt + the separator: what a completion is generated from."""
        return [self.tokenizer.eot_id, *self.tokenizer.encode_prompt(prompt + self.separator)]

    def encode_completion(self, completion: str) -> list[int]:
        """The completion's ids followed by eot."""
        return [*self.tokenizer.encode_prompt(completion), self.tokenizer.eot_id]

    def decode_completion(self, ids: Sequence[int]) -> str:
        """Generated ids up to (not including) the first eot, as text."""
        ids = list(ids)
        if self.tokenizer.eot_id in ids:
            ids = ids[: ids.index(self.tokenizer.eot_id)]
        return self.tokenizer.decode(ids)

    def fitted_prompt(self, prompt: str, room: int = 1) -> list[int]:
        """encode_prompt, and with data.long_prompts=cut its first token (eot) and last tokens
        only, so that `room` completion tokens still fit in block_size."""
        ids = self.encode_prompt(prompt)
        keep = self.block_size - room
        if self.long_prompts == "cut" and len(ids) > keep:
            ids = [ids[0], *ids[len(ids) - keep + 1 :]]
        return ids

    def _encode_row(self, r: dict) -> tuple[int, list[int], bool, bool]:
        """(prompt length, ids, completion cut, prompt cut) of one record."""
        limit = self.block_size + 1  # x and y are the row shifted by one: block_size positions each
        completion = self.encode_completion(r["completion"])
        prompt = self.fitted_prompt(r["prompt"], room=min(len(completion), self.block_size // 2))
        prompt_cut = len(prompt) < len(self.encode_prompt(r["prompt"]))
        if len(prompt) + 1 > self.block_size:
            raise GenkitError(
                f"{r['where']}: its prompt is {len(prompt)} tokens (with the leading end-of-text), which leaves no "
                f"room for a completion in data.block_size={self.block_size}; shorten the prompt or raise "
                f"data.block_size (a language model's context is fixed by its starting run)."
            )
        ids = prompt + completion
        return len(prompt), ids[:limit], len(ids) > limit, prompt_cut

    def _check_label(self, r: dict, split: str, known: set[str]) -> None:
        if normalise(r["completion"]) not in known:
            raise GenkitError(
                f"{r['where']} ({split}) has the label {r['completion']!r}, which the label set lacks "
                f"({len(known)} labels: {', '.join(sorted(known)[:10])}{', ...' if len(known) > 10 else ''})"
                f"; add it to data.labels or correct the record."
            )

    def _write_split(self, folder: Path, split: str, records: Iterator[dict], dtype: str) -> tuple[int, int, list]:
        """Encode a split's records into folder: (rows, longest completion, warnings). Val and
        test records are kept too (eval scores them); train's are not held."""
        writer, kept, cut, cut_prompts, longest = PairRowsWriter(folder, split, dtype), [], 0, 0, 0
        known = set(self.labels) if self.given_labels is not None else None
        for r in records:
            if known is not None:
                self._check_label(r, split, known)
            prompt_len, ids, completion_cut, prompt_cut = self._encode_row(r)
            writer.append(prompt_len, ids)
            cut, cut_prompts = cut + completion_cut, cut_prompts + prompt_cut
            longest = max(longest, len(ids) - prompt_len)
            if split != "train":
                kept.append(r)
        count = writer.finish()
        if split != "train":
            write_records(folder / f"{split}.records.jsonl", kept)
        warnings = []
        if cut_prompts:
            warnings.append(
                f"{cut_prompts} of the {count} {split} records have prompts longer than data.block_size="
                f"{self.block_size} allows: their starts are cut (data.long_prompts=cut)."
            )
        if cut:
            warnings.append(
                f"{cut} of the {count} {split} records are longer than data.block_size={self.block_size} tokens: "
                f"their completions are cut to fit (raise data.block_size to keep them whole)."
            )
        return count, longest, warnings

    def _counted(self, records: Iterator[dict], completions: dict) -> Iterator[dict]:
        """The records as they are, their completions counted on the way: distinct ones only up to
        one more than data.max_labels, past which they are no label set anyway."""
        distinct = completions["distinct"]
        for r in records:
            completions["count"] += 1
            if len(distinct) <= self.max_labels:
                completion = normalise(r["completion"])
                distinct[completion] = distinct.get(completion, 0) + 1
            yield r

    def _label_set(self, completions: dict) -> list[str] | None:
        """The closed set of labels, if the training completions form one (see the module's docstring)."""
        if self.given_labels is not None:
            return [normalise(x) for x in self.given_labels]
        distinct, count = completions["distinct"], completions["count"]
        return sorted(distinct) if len(distinct) <= self.max_labels and len(distinct) * 5 <= count else None

    def cache_dir(self) -> Path:
        """Where the encoded rows live, named by the sources' checksums (or a dataset's
        fingerprints) and every setting that changes a row."""
        if self.dataset:
            sources = {split: ds._fingerprint for split, (_, ds) in self._hf_splits().items()}
        else:
            sources = {split: sha256_of(path) for split, path in self._split_files().items()}
        given = self._given_tokenizer()
        key = {
            "version": PAIR_CACHE_VERSION,
            "sources": sources,
            "settings": [self.tokenizer_kind, self.vocab_size, self.block_size, self.separator, self.read.prompt_key,
                         self.read.completion_key, self.fractions, self.max_labels, self.given_labels,
                         self.long_prompts, self.max_record_bytes],
            "tokenizer": hashlib.sha256(json.dumps(given.to_json()).encode()).hexdigest() if given else None,
        }  # fmt: skip
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
        return self.cache_root / f"{self.name}-{digest}"

    def _prepare(self, cache: Path) -> None:
        ranges = self._split_ranges()
        folder = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        try:
            if not any(True for _ in self._records(ranges, "train")):
                raise GenkitError(f"The training split of {self.name} has no records.")
            # one pass over train fits the tokenizer and counts the completions (the label set)
            completions = {"count": 0, "distinct": {}}
            train = self._counted(self._records(ranges, "train"), completions)
            tokenizer = self._given_tokenizer() or self._fit_tokenizer(train)
            for _ in train:  # what fitting did not read: all of it when the tokenizer is given
                pass
            if tokenizer.vocab_size > self.vocab_size:
                raise GenkitError(
                    f"The {self.name} tokenizer has {tokenizer.vocab_size} tokens but data.vocab_size is "
                    f"{self.vocab_size}; set data.vocab_size={tokenizer.vocab_size}."
                )
            self.tokenizer = tokenizer
            self.labels = self._label_set(completions)
            counts = [completions["distinct"].get(label, 0) for label in self.labels] if self.labels else None
            dtype = np.dtype(np.uint16 if tokenizer.vocab_size <= 1 << 16 else np.uint32).name
            meta = {"dtype": dtype, "rows": {}, "labels": self.labels, "label_counts": counts, "warnings": []}
            for split in ranges:
                count, longest, warnings = self._write_split(folder, split, self._records(ranges, split), dtype)
                meta["rows"][split] = count
                meta["warnings"] += warnings
                if split == "train":
                    meta["longest_completion"] = longest
            save_tokenizer(tokenizer, folder / "tokenizer.json")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        finish_cache(folder, cache, meta)

    def setup(self, stage: str | None = None) -> None:
        """Encode the records once into the cache (runs that start together wait for one
        another), then read the rows from it, memory-mapped."""
        if self.rows:
            return
        from filelock import FileLock

        cache = self.cache_dir()
        if not (cache / "meta.json").is_file():
            cache.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(cache.with_name(f".{cache.name}.lock"))):
                if not (cache / "meta.json").is_file():
                    self._prepare(cache)
        meta = json.loads((cache / "meta.json").read_text())
        for message in meta["warnings"]:
            log.warning(message)
        self.tokenizer = load_tokenizer(cache / "tokenizer.json")
        self.labels, self.longest_completion = meta["labels"], meta["longest_completion"]
        self.label_counts = meta.get("label_counts")
        self.rows = {split: PairRows.load(cache, split, meta["dtype"]) for split in meta["rows"]}
        self.records = {
            split: read_records(cache / f"{split}.records.jsonl") for split in self.rows if split != "train"
        }

    # ---- loaders ----------------------------------------------------------------------------

    def _split(self, split: str) -> PairRows:
        return self.rows[split] if len(self.rows.get(split) or ()) else self.rows["val"]

    def train_dataloader(self) -> DataLoader:
        rows = self.rows["train"]
        lengths = rows.lengths() if self.group_by_length else None
        return self.training_loader(
            PairBatches(rows, self.tokenizer.eot_id),
            per_process(self.trainer, self.batch_size),
            self.seed,
            self.num_workers,
            lengths=lengths,
        )

    def _evaluation_batches(self, split: str) -> PairBatches:
        # shortest first: each batch is padded to its longest row, and the loss is a token-weighted
        # mean, which the order does not change
        rows = self._split(split)
        return PairBatches(rows, self.tokenizer.eot_id, order=np.argsort(rows.lengths().numpy(), kind="stable"))

    def val_dataloader(self) -> DataLoader:
        return self.evaluation_loader(self._evaluation_batches("val"), self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self.evaluation_loader(self._evaluation_batches("test"), self.eval_batch_size)

    # ---- the task: what eval and the validation callback score ------------------------------

    def task_records(self, split: str) -> list[dict]:
        """The records of a split (test falls back to val), each {prompt, completion, where, row}."""
        self.setup()
        if split == "train":
            raise GenkitError("The training records are not kept in memory; genkit scores a task on val or test.")
        return self.records.get(split) or self.records["val"]

    # ---- the data contract: text in, text out -------------------------------------------------

    def state_dict(self) -> dict:
        """The tokenizer and the label set, saved in every checkpoint."""
        if self.tokenizer is None:
            return {}
        return {
            "tokenizer": json.dumps(self.tokenizer.to_json()),
            "labels": self.labels,
            "label_counts": self.label_counts,
            "longest_completion": self.longest_completion,
        }

    def load_state_dict(self, state: dict) -> None:
        if "tokenizer" in state:
            self.tokenizer = tokenizer_from_json(json.loads(state["tokenizer"]))
            self.tokenizer_from_checkpoint = True
        self.labels = state.get("labels", self.labels)
        self.label_counts = state.get("label_counts", self.label_counts)
        self.longest_completion = state.get("longest_completion", self.longest_completion)

    def save_artifacts(self, run_dir: Path) -> None:
        if self.tokenizer is not None:
            (run_dir / "tokenizer.json").write_text(json.dumps(self.tokenizer.to_json()))

    def sample_input(self, name: str, n: int, options: Mapping) -> list[int]:
        if name != "prompt_ids":
            return super().sample_input(name, n, options)
        if not options.get("prompt") and self.trainer is not None and self.records:
            # the sample grid during training: the first validation prompt, completed
            return self.encode_prompt(self.task_records("val")[0]["prompt"])
        if not options.get("prompt"):
            raise GenkitError(
                f'{self.name} is a prompt -> completion task: give the prompt to complete (prompt="..."), or a file '
                f"of them (inputs=<file.jsonl> out=<preds.jsonl>)."
            )
        if self.tokenizer is None:
            self.setup()
        return self.encode_prompt(options["prompt"])

    def chat_template(self) -> str:
        """genkit's template (genkit.data.chat): the one chat records were flattened with in training;
        encode_prompt then adds the separator."""
        return GENKIT_CHAT_TEMPLATE

    def end_of_turn_ids(self) -> list[int]:
        """A completion ends with the boundary token."""
        if self.tokenizer is None:
            self.setup()
        return [self.tokenizer.eot_id]

    def samples_as_text(self, samples: torch.Tensor) -> list[str]:
        return [self.tokenizer.decode(row[1:].tolist()) for row in samples]

    def write_samples(self, samples: torch.Tensor, path: str | Path, inputs: Mapping | None = None) -> Path:
        return write_text(self.samples_as_text(samples), with_suffix(path, self.sample_suffix))

    def items_per_sample(self) -> int:
        return self.block_size
