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
        raise undecodable(path, data[err.start], err.start, encoding) from None


def undecodable(path: Path, byte: int, offset: int, encoding: str | None) -> GenkitError:
    """The paragraph for a byte at `offset` of path that its encoding cannot decode."""
    if encoding:
        return GenkitError(
            f"{path} is not {encoding} text either: byte {byte:#04x} at offset {offset} cannot be decoded. Give its "
            f"real encoding as data.encoding=<encoding>."
        )
    return GenkitError(
        f"{path} is not UTF-8 text: byte {byte:#04x} at offset {offset} is not valid UTF-8. If it is text in another "
        f"encoding, pass data.encoding=<its encoding> (e.g. latin-1 or cp1252; `file {path}` may tell); genkit does "
        f"not guess, since a wrong guess trains on garbled characters."
    )


def text_folder_files(folder: Path) -> list[Path]:
    """The files below folder, hidden ones left out, sorted."""
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and not any(s.startswith(".") for s in p.relative_to(folder).parts)
    )


def empty_split_message(name: str, split: str, sizes: dict[str, int], fractions: dict, block_size: int) -> str:
    """Why a split of the text has no tokens (a one-line file cut 90/5/5), and how much is needed;
    sizes: the characters of each split."""
    total = sum(sizes.values())
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
