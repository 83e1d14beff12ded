"""Reading the user's text files: decided per file, never guessed silently.

UTF-8 text is read as it is. Other text (Latin-1, CP1252, UTF-16, ...) is read only with
`data.encoding=<its encoding>`: decoding it as UTF-8 with replacement characters would train on
"Caf\\ufffd" without a word. Binary files (a program, a PNG) are not text at all: a file named
by data.path is refused, and in a folder they are skipped with one warning line that counts and
names them.
"""

import codecs
import logging
from pathlib import Path

from genkit.errors import GenkitError

log = logging.getLogger("genkit")

# how much of a file decides whether it is binary
SNIFF_BYTES = 8192
# control characters that text does not hold (tab, newlines, form feed and escape are text's)
_TEXT_CONTROLS = {7, 8, 9, 10, 12, 13, 27}


def is_binary(head: bytes) -> bool:
    """A NUL byte (no text encoding but UTF-16/32 has one, and those start with a BOM), or more
    than 10% control characters: the test `file` and git use, near enough."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return False
    if b"\0" in head:
        return True
    controls = sum(1 for b in head if b < 32 and b not in _TEXT_CONTROLS)
    return bool(head) and controls / len(head) > 0.1


def check_encoding(encoding: str | None) -> None:
    if encoding is None:
        return
    try:
        codecs.lookup(str(encoding))
    except LookupError:
        raise GenkitError(
            f"data.encoding={encoding!r} is not an encoding Python knows; give e.g. latin-1, cp1252, utf-16 "
            f"(or leave it out for UTF-8)."
        ) from None


def decode(path: Path, data: bytes, encoding: str | None) -> str:
    """The text of one file: UTF-8 (a BOM dropped) unless `encoding` says otherwise."""
    try:
        return data.decode(encoding or "utf-8-sig")
    except UnicodeDecodeError as err:
        if encoding:
            raise GenkitError(
                f"{path} is not {encoding} text either: byte {data[err.start]:#04x} at offset {err.start} "
                f"cannot be decoded. Give its real encoding as data.encoding=<encoding>."
            ) from None
        raise GenkitError(
            f"{path} is not UTF-8 text: byte {data[err.start]:#04x} at offset {err.start} is not valid UTF-8. If it "
            f"is text in another encoding, pass data.encoding=<its encoding> (e.g. latin-1 or cp1252; "
            f"`file {path}` may tell); genkit does not guess, since a wrong guess trains on garbled characters."
        ) from None


def read_text_file(path: Path, encoding: str | None = None) -> str:
    data = path.read_bytes()
    if is_binary(data[:SNIFF_BYTES]):
        raise GenkitError(
            f"data.path={path} is not a text file (it holds binary data: NUL bytes or control characters); "
            f"give a text file, or a folder of them."
        )
    return decode(path, data, encoding)


def read_text_folder(folder: Path, encoding: str | None = None) -> list[str]:
    """The text of every text file below folder (sorted by path); binary files skipped, in one warning."""
    texts, skipped = [], []
    for path in text_folder_files(folder):
        data = path.read_bytes()
        if is_binary(data[:SNIFF_BYTES]):
            skipped.append(path)
            continue
        texts.append(decode(path, data, encoding))
    if skipped:
        names = ", ".join(str(p.relative_to(folder)) for p in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        log.warning("Skipped %d binary file(s) in %s (not text): %s", len(skipped), folder, names)
    if not texts:
        raise GenkitError(f"{folder} holds no text files; data.path must be a text file or a folder of them.")
    return texts


def text_folder_files(folder: Path) -> list[Path]:
    """The files below folder, hidden ones left out, sorted."""
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and not any(s.startswith(".") for s in p.relative_to(folder).parts)
    )


def empty_split_message(name: str, split: str, texts: dict, fractions: dict, block_size: int) -> str:
    """Why a split of the text has no tokens (a one-line file cut 90/5/5), and how much is needed."""
    total = sum(len(t) for t in texts.values())
    if split in fractions:
        share = fractions[split] / sum(fractions.values())
        # a split needs a token at least; training wants block_size + 2 of them in its own share
        need = max(int(1 / share) + 1, int((block_size + 2) / (1 - share)) + 1)
        how = (
            f"data.fractions gives it {share:.0%} of the text's {total} characters. Give at least about {need} "
            f"characters of text (more for a useful validation), or change data.fractions"
        )
    else:
        how = "its file is empty; give it text"
    return f"The {split} split of {name} is empty: {how}."
