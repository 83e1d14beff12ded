"""Records of a prompt -> completion task, read from JSON Lines, JSON, CSV or Parquet files and
written back with predictions beside them (genkit.data.pairs trains on them; `genkit sample
inputs=` completes them). A chat record's `messages` become a prompt and a completion through one
documented template (CHAT_TURN).

Files are read as UTF-8 (a leading byte-order mark is skipped). A line of JSON Lines or CSV is
read with a bounded readline: one longer than max_record_bytes is refused by its number without
being held whole. A prompt or completion must be text: null, a number, a list or an object is
refused by its file, line (or row) and field rather than trained on as its Python repr.
"""

import csv
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from genkit.errors import GenkitError

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
# the file names a data.path folder may hold for each split, first match wins
SPLIT_FILES = {"train": ("train",), "val": ("val", "validation"), "test": ("test",)}
# the chat template: each message as "<role>: <content>" on its own line, the prompt ending with
# "assistant:" and the last assistant message as the completion (after one space)
CHAT_TURN = "{role}: {content}\n"
# the default data.max_record_bytes: the longest line of JSON Lines or CSV, far above any real record
MAX_RECORD_BYTES = 16 * 1024 * 1024


def normalise(text: str) -> str:
    """Whitespace collapsed to single spaces and trimmed: how completions are compared."""
    return " ".join(str(text).split())


def text_field(where: str, key: str, value: Any) -> str:
    """A prompt's or completion's value, which must be text: anything else is refused naming the
    record (file and line or row) and the field, with how to write it as text."""
    if isinstance(value, str):
        return value
    if value is None:
        short = " (a CSV line with fewer fields than the header row)" if ".csv line " in where else ""
        raise GenkitError(f"{where}: the {key!r} field is null{short}, not text; fill it in or leave the record out.")
    kinds = {bool: "true/false", int: "a number", float: "a number", list: "a list", dict: "an object"}
    kind = next((name for cls, name in kinds.items() if isinstance(value, cls)), type(value).__name__)
    shown = json.dumps(value, default=str)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    if isinstance(value, (bool, int, float)):
        fix = (f"write it as a string (in JSON Lines in quotes, e.g. {json.dumps(key)}: {json.dumps(shown)}; in "
               f"Parquet or a Hugging Face dataset, a string column)")  # fmt: skip
    elif isinstance(value, list):
        fix = "give it as one string (join the list's items)"
    else:
        fix = "give the text itself as a string there, not an object holding it"
    raise GenkitError(
        f"{where}: the {key!r} field is {kind} ({shown}), not text, and genkit trains on text only: {fix}, or name "
        f"the field that holds the text with data.prompt_key / data.completion_key."
    )


def chat_pair(messages: Any, where: str) -> tuple[str, str]:
    """A `messages` list (role / content) as (prompt, completion): every message before the last
    as CHAT_TURN lines and "assistant:", then the last (an assistant's) content."""
    ok = isinstance(messages, list) and messages and all(isinstance(m, Mapping) and {"role", "content"} <= m.keys()
                                                         for m in messages)  # fmt: skip
    if not ok or messages[-1]["role"] != "assistant":
        raise GenkitError(
            f"{where}: `messages` must be a list of {{role, content}} objects ending with the assistant's reply, "
            f"which is the completion to learn."
        )
    turns = [(text_field(where, f"messages[{i}].role", m["role"]),
              text_field(where, f"messages[{i}].content", m["content"])) for i, m in enumerate(messages)]  # fmt: skip
    prompt = "".join(CHAT_TURN.format(role=role, content=content) for role, content in turns[:-1])
    return prompt + "assistant:", " " + turns[-1][1]


def _lines(f, path: Path, max_bytes: int) -> Iterator[tuple[int, bytes]]:
    """(number, line) of a file opened in binary, each read with readline(max_bytes + 1): a line
    longer than max_bytes (with its line end) is refused before the rest of it is read."""
    number = 0
    while line := f.readline(max_bytes + 1):
        number += 1
        if len(line) > max_bytes:
            raise GenkitError(
                f"{path} line {number} is longer than data.max_record_bytes={max_bytes} bytes (it was not read "
                f"further): a record that long is not text to train on. Leave it out of the file, or raise "
                f"data.max_record_bytes if such records are real."
            )
        yield number, line.removeprefix(b"\xef\xbb\xbf") if number == 1 else line  # a UTF-8 byte-order mark


def _decoded_lines(f, path: Path, max_bytes: int) -> Iterator[str]:
    for _, line in _lines(f, path, max_bytes):
        yield line.decode("utf-8", errors="replace")


def _json_array(f, path: Path) -> list[tuple[str, Any]]:
    try:
        rows = json.loads(f.read().decode("utf-8-sig", errors="replace"))
    except ValueError as err:
        raise GenkitError(f"{path} is not valid JSON ({err}); give a JSON list or JSON Lines.") from None
    return [(f"{path} record {i + 1}", row) for i, row in enumerate(rows)]


def _is_json_array(f, path: Path) -> bool:
    """Whether a .json file holds one JSON list (read whole) rather than JSON Lines."""
    if path.suffix != ".json":
        return False
    head = f.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()
    while not head and (more := f.read(4096)):
        head = more.lstrip()
    f.seek(0)
    return head.startswith(b"[")


def _json_lines(path: Path, max_bytes: int) -> Iterator[tuple[str, Any]]:
    with path.open("rb") as f:
        if _is_json_array(f, path):  # one JSON list is one value: read whole
            yield from _json_array(f, path)
            return
        for number, raw in _lines(f, path, max_bytes):
            line = raw.decode("utf-8", errors="replace")
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise GenkitError(
                    f"{path} line {number} is not JSON ({line[:60]!r}): data=pairs reads JSON Lines (one object a "
                    f"line, .jsonl), CSV (.csv with a header row) or Parquet (.parquet)."
                ) from None
            yield f"{path} line {number}", row


def _csv_rows(path: Path, max_bytes: int) -> Iterator[tuple[str, Any]]:
    limit = csv.field_size_limit()
    # a field may be as long as a record may (csv's own limit, 128 KiB, is process-wide: restored after)
    csv.field_size_limit(max(limit, max_bytes))
    try:
        with path.open("rb") as f:
            reader = csv.DictReader(_decoded_lines(f, path, max_bytes))
            for row in reader:
                yield f"{path} line {reader.line_num}", row
    except csv.Error as err:
        raise GenkitError(
            f"{path} line {reader.line_num} is not CSV ({err}); give a header row and one record a line, quoting "
            f"fields that hold commas, quotes or line ends."
        ) from None
    finally:
        csv.field_size_limit(limit)


def _parquet_rows(path: Path) -> Iterator[tuple[str, Any]]:
    import pyarrow.parquet as pq  # here: only Parquet data needs it

    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=1024)
        number = 0
        for batch in batches:
            for row in batch.to_pylist():
                number += 1
                yield f"{path} row {number}", row
    except GenkitError:
        raise
    except Exception as err:  # pyarrow's own error types: whatever they are, the file is not Parquet
        raise GenkitError(f"{path} is not a Parquet file ({type(err).__name__}: {err}).") from None


def iter_rows(path: Path, max_bytes: int = MAX_RECORD_BYTES) -> Iterator[tuple[str, Any]]:
    """(where, row) for each record of a JSON Lines, JSON, CSV or Parquet file, read as it goes
    (a JSON list excepted); `where` names the file and line for error messages. A line of JSON
    Lines or CSV longer than max_bytes is refused (see the module's docstring)."""
    if not path.is_file():
        raise GenkitError(f"{path} does not exist; give a .jsonl, .csv or .parquet file of records.")
    if path.suffix == ".csv":
        return _csv_rows(path, max_bytes)
    if path.suffix == ".parquet":
        return _parquet_rows(path)
    return _json_lines(path, max_bytes)


def read_rows(path: Path, max_bytes: int = MAX_RECORD_BYTES) -> list[tuple[str, Any]]:
    """iter_rows, all at once (a file of prompts to complete)."""
    return list(iter_rows(path, max_bytes))


class Pairs:
    """How a row becomes (prompt, completion): the keys to read, or a chat's messages."""

    def __init__(self, prompt_key: str, completion_key: str):
        self.prompt_key, self.completion_key = prompt_key, completion_key

    def __call__(self, where: str, row: Any, need_completion: bool = True) -> tuple[str, str | None]:
        if not isinstance(row, Mapping):
            raise GenkitError(f"{where} is {type(row).__name__}, not a record with named fields.")
        if self.prompt_key not in row and "messages" in row:
            return chat_pair(row["messages"], where)
        missing = [k for k in (self.prompt_key, self.completion_key)[: 2 if need_completion else 1] if k not in row]
        if missing:
            raise GenkitError(
                f"{where} has no {' and no '.join(repr(k) for k in missing)} field (its fields: "
                f"{', '.join(map(str, row)) or 'none'}); name the prompt and completion fields with "
                f"data.prompt_key=<field> data.completion_key=<field>, or give chat records with `messages`."
            )
        prompt = text_field(where, self.prompt_key, row[self.prompt_key])
        if not need_completion:  # a prompt to complete: a completion beside it is not read
            return prompt, None
        completion = text_field(where, self.completion_key, row[self.completion_key])
        if not completion.strip():
            raise GenkitError(
                f"{where} has an empty completion ({self.completion_key}={completion!r}): there is nothing to learn "
                f"from it; fill it in or leave the record out."
            )
        return prompt, completion


def write_predictions(records: list[dict], predictions: list[str], path: Path, extra: list[dict] | None = None) -> Path:
    """One JSON line per input record: its own fields, the `prediction` and any `extra` fields
    (a label head's `probabilities`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for k, (record, prediction) in enumerate(zip(records, predictions, strict=True)):
            row = dict(record["row"]) if isinstance(record["row"], Mapping) else {}
            f.write(json.dumps({**row, "prediction": prediction, **(extra[k] if extra else {})}) + "\n")
    return path
