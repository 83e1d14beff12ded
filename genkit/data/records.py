"""Records of a prompt -> completion task, read from JSON Lines, JSON, CSV or Parquet files and
written back with predictions beside them (genkit.data.pairs trains on them; `genkit sample
inputs=` completes them). A chat record's `messages` become a prompt and a completion through one
documented template (CHAT_TURN).
"""

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genkit.errors import GenkitError

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
# the file names a data.path folder may hold for each split, first match wins
SPLIT_FILES = {"train": ("train",), "val": ("val", "validation"), "test": ("test",)}
# the chat template: each message as "<role>: <content>" on its own line, the prompt ending with
# "assistant:" and the last assistant message as the completion (after one space)
CHAT_TURN = "{role}: {content}\n"


def normalise(text: str) -> str:
    """Whitespace collapsed to single spaces and trimmed: how completions are compared."""
    return " ".join(str(text).split())


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
    prompt = "".join(CHAT_TURN.format(role=m["role"], content=m["content"]) for m in messages[:-1])
    return prompt + "assistant:", " " + str(messages[-1]["content"])


def _json_lines(path: Path) -> list[tuple[str, Any]]:
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except ValueError as err:
            raise GenkitError(f"{path} is not valid JSON ({err}); give a JSON list or JSON Lines.") from None
        return [(f"{path} record {i + 1}", row) for i, row in enumerate(rows)]
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append((f"{path} line {number}", json.loads(line)))
        except ValueError:
            raise GenkitError(
                f"{path} line {number} is not JSON ({line[:60]!r}): data=pairs reads JSON Lines (one object a line, "
                f".jsonl), CSV (.csv with a header row) or Parquet (.parquet)."
            ) from None
    return rows


def read_rows(path: Path) -> list[tuple[str, Any]]:
    """(where, row) for each record of a JSON Lines, JSON, CSV or Parquet file; `where` names the
    file and line for error messages."""
    if not path.is_file():
        raise GenkitError(f"{path} does not exist; give a .jsonl, .csv or .parquet file of records.")
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.DictReader(f)
            return [(f"{path} line {reader.line_num}", row) for row in reader]
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq  # here: only Parquet data needs it

        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as err:  # pyarrow's own error types: whatever they are, the file is not Parquet
            raise GenkitError(f"{path} is not a Parquet file ({type(err).__name__}: {err}).") from None
        return [(f"{path} row {i + 1}", row) for i, row in enumerate(rows)]
    return _json_lines(path)


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
        completion = row.get(self.completion_key)
        if need_completion and (completion is None or not str(completion).strip()):
            raise GenkitError(
                f"{where} has an empty completion ({self.completion_key}={completion!r}): there is nothing to learn "
                f"from it; fill it in or leave the record out."
            )
        return str(row[self.prompt_key]), None if completion is None else str(completion)


def write_predictions(records: list[dict], predictions: list[str], path: Path) -> Path:
    """One JSON line per input record: its own fields and the `prediction`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for record, prediction in zip(records, predictions, strict=True):
            row = dict(record["row"]) if isinstance(record["row"], Mapping) else {}
            f.write(json.dumps({**row, "prediction": prediction}) + "\n")
    return path
