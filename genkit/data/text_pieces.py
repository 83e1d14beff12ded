"""Text read in pieces, never whole: the sources of a text data set as one stream of characters,
counted in one pass, cut into splits by character offsets and into pieces for encoding.

A corpus of any size passes through in blocks of BLOCK_CHARS, so preparing it needs memory for a
few pieces, not for the corpus. The splits are cut exactly where cutting the whole text by
`data.fractions` would cut it (the first 90% of the characters, ...), and pieces end where
encoding them apart gives the tokens that encoding the split whole gives: after a line break
between two visible characters, else before a space between two words, else anywhere (a text
with no whitespace at all).
"""

import codecs
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from genkit.data.text_files import SNIFF_BYTES, is_binary, text_folder_files, undecodable
from genkit.errors import GenkitError

log = logging.getLogger("genkit")

# characters decoded per read: the memory of a pass over a file, whatever its size
BLOCK_CHARS = 1 << 20
# characters per piece handed to a tokenizer (a worker process encodes one at a time)
PIECE_CHARS = 1 << 21


class TextStream:
    """Characters in order from some source, as blocks; `blocks()` can be read again from the start."""

    def blocks(self) -> Iterator[str]:
        raise NotImplementedError


class StringStream(TextStream):
    """Text already in memory (a small split, a data set's rows joined)."""

    def __init__(self, text: str):
        self.text = text

    def blocks(self) -> Iterator[str]:
        for start in range(0, len(self.text), BLOCK_CHARS):
            yield self.text[start : start + BLOCK_CHARS]


class FileStream(TextStream):
    """Text files read in blocks, joined by a line break, as data=text joined them whole: UTF-8
    (a byte-order mark dropped) unless `encoding` says otherwise; in a folder, binary files are
    skipped with one warning, a binary file named alone is refused (genkit.data.text_files)."""

    def __init__(self, paths: Sequence[Path], encoding: str | None = None, named: Path | None = None):
        self.paths, self.encoding, self.named = list(paths), encoding, named
        self._checked = False

    @classmethod
    def of(cls, path: Path, encoding: str | None = None) -> "FileStream":
        """A file, or every text file below a folder (sorted by path)."""
        if path.is_dir():
            return cls(text_folder_files(path), encoding, named=path)
        if not path.is_file():
            raise GenkitError(f"data.path={path} does not exist; give a text file or a folder of text files.")
        return cls([path], encoding)

    def _text_files(self) -> list[Path]:
        if self._checked:
            return self.paths
        texts, skipped = [], []
        for path in self.paths:
            with open(path, "rb") as f:
                binary = is_binary(f.read(SNIFF_BYTES))
            (skipped if binary else texts).append(path)
        if skipped and self.named is None:
            raise GenkitError(
                f"data.path={skipped[0]} is not a text file (it holds binary data: NUL bytes or control characters); "
                f"give a text file, or a folder of them."
            )
        if skipped:
            names = ", ".join(str(p.relative_to(self.named)) for p in skipped[:5]) + (
                ", ..." if len(skipped) > 5 else ""
            )
            log.warning("Skipped %d binary file(s) in %s (not text): %s", len(skipped), self.named, names)
        if not texts:
            raise GenkitError(f"{self.named} holds no text files; data.path must be a text file or a folder of them.")
        self.paths, self._checked = texts, True
        return texts

    def blocks(self) -> Iterator[str]:
        for i, path in enumerate(self._text_files()):
            if i:
                yield "\n"
            yield from _file_blocks(path, self.encoding)


def _file_blocks(path: Path, encoding: str | None) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder(encoding or "utf-8-sig")()
    offset = 0
    with open(path, "rb") as f:
        while True:
            data = f.read(BLOCK_CHARS)
            try:
                text = decoder.decode(data, final=not data)
            except UnicodeDecodeError as err:  # err.start counts from the bytes the decoder held back
                held = len(decoder.getstate()[0])
                raise undecodable(path, err.object[err.start], offset - held + err.start, encoding) from None
            if text:
                yield text
            if not data:
                return
            offset += len(data)


def count_chars(stream: TextStream) -> int:
    return sum(len(block) for block in stream.blocks())


@dataclass
class SplitRange:
    """Characters [start, end) of a stream: one split of a data set."""

    stream: TextStream
    start: int
    end: int

    @property
    def chars(self) -> int:
        return self.end - self.start


def cut_stream(stream: TextStream, fractions: Mapping[str, float], total: float = 1.0) -> dict[str, SplitRange]:
    """Consecutive ranges of the stream, each `fraction / total` of its characters in the order
    given, the last taking the rest (`{train: 0.9, val: 0.1}`: the first 90% of the characters)."""
    length = count_chars(stream)
    names, ranges, start = list(fractions), {}, 0
    for split, fraction in fractions.items():
        end = length if split == names[-1] else start + int(length * fraction / total)
        ranges[split] = SplitRange(stream, start, end)
        start = end
    return ranges


def whole(stream: TextStream) -> SplitRange:
    return SplitRange(stream, 0, count_chars(stream))


def _chars(rng: SplitRange) -> Iterator[str]:
    """The range's characters, as blocks."""
    position = 0
    for block in rng.stream.blocks():
        end = position + len(block)
        if end > rng.start and position < rng.end:
            yield block[max(rng.start - position, 0) : rng.end - position]
        position = end
        if position >= rng.end:
            return


def _cut_point(text: str, limit: int) -> tuple[int, bool]:
    """Where to end a piece within text[:limit] (limit < len(text) - 2), and whether it ends a
    line: after a line break that follows a visible character and precedes one (or a single
    space and then one, as PTB's lines start); else before a space between two words."""

    def clean_break(i: int) -> bool:
        after = text[i + 1]
        return not text[i - 1].isspace() and (not after.isspace() or (after == " " and not text[i + 2].isspace()))

    i = text.rfind("\n", 0, limit)
    while i > 0 and not clean_break(i):
        i = text.rfind("\n", 0, i)
    if i > 0:
        return i + 1, True
    j = text.rfind(" ", 0, limit)
    while j > 0 and (text[j - 1].isspace() or text[j + 1].isspace()):
        j = text.rfind(" ", 0, j)
    if j > 0:
        return j, False
    return limit, False


def pieces(rng: SplitRange, skip: int = 0, piece_chars: int | None = None) -> Iterator[tuple[str, bool, int]]:
    """(text, ends_line, characters done after it) for consecutive pieces of the range, starting
    `skip` characters in (where an interrupted preparation stopped: a piece boundary). The last
    piece ends the range and counts as ending a line, as the split's end does when encoded whole."""
    piece_chars = piece_chars or PIECE_CHARS
    buffer, done = "", skip
    for block in _chars(SplitRange(rng.stream, rng.start + skip, rng.end)):
        buffer += block
        while len(buffer) > piece_chars + 2:
            cut, ends_line = _cut_point(buffer, piece_chars)
            done += cut
            yield buffer[:cut], ends_line, done
            buffer = buffer[cut:]
    if buffer:
        yield buffer, True, done + len(buffer)
