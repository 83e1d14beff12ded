"""Text prepared in pieces (genkit.data.text_pieces, genkit.data.token_files): the same splits and
tokens as encoding each split whole, in worker processes too, resumable after an interruption,
and within a memory cap that the whole corpus would break."""

import json

import numpy as np
import pytest
from hydra.utils import instantiate

import genkit.data.text_pieces as text_pieces
import genkit.data.token_files as token_files
from genkit.data.text_pieces import FileStream, StringStream, cut_stream, pieces, whole
from genkit.data.tokenizers import KINDS
from genkit.errors import GenkitError
from tests.helpers import make_cfg, run_under_memory_cap

WORDS = ["the", "cat", "sat", "on", "a", "mat", "while", "dogs", "ran", "by", ",", "and", "it", "rained", "."]


def corpus(n_lines: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n_lines):
        line = " ".join(rng.choice(WORDS, size=int(rng.integers(0, 14))))
        # blank lines, lines that start with a space (PTB's), double spaces: the cut must keep tokens
        lines.append([line, " " + line, "", line.replace(" ", "  ", 1)][i % 4])
    return "\n".join(lines) + "\n"


def whole_split(text: str, fractions: dict) -> dict[str, str]:
    """How data=text cut a text before it read in pieces: by characters, the last split the rest."""
    names, out, start = list(fractions), {}, 0
    for split, fraction in fractions.items():
        end = len(text) if split == names[-1] else start + int(len(text) * fraction)
        out[split], start = text[start:end], end
    return out


@pytest.fixture
def small_pieces(monkeypatch):
    """Pieces of ~200 characters read in blocks of 64: many cuts in a small text."""
    monkeypatch.setattr(text_pieces, "PIECE_CHARS", 200)
    monkeypatch.setattr(text_pieces, "BLOCK_CHARS", 64)


def test_a_folder_is_cut_where_the_whole_text_was(tmp_path, small_pieces):
    folder = tmp_path / "texts"
    folder.mkdir()
    parts = [corpus(30, seed) for seed in range(3)]
    for i, part in enumerate(parts):
        (folder / f"{i}.txt").write_text(part)
    (folder / "image.bin").write_bytes(b"\0\1\2" * 100)  # skipped, as before
    fractions = {"train": 0.9, "val": 0.05, "test": 0.05}
    ranges = cut_stream(FileStream.of(folder), fractions)
    expected = whole_split("\n".join(parts), fractions)
    for split, rng in ranges.items():
        assert "".join(text for text, _, _ in pieces(rng)) == expected[split]


@pytest.mark.parametrize("kind", ["bpe", "word", "char"])
def test_pieces_encode_to_the_tokens_of_the_whole_text(small_pieces, kind):
    text = corpus(200)
    tokenizer = KINDS[kind].fit(text, 300)
    rng = whole(StringStream(text))
    cut = list(pieces(rng))
    assert len(cut) > 20
    ids = np.concatenate([token_files._encode(tokenizer, t, ends, "uint32") for t, ends, _ in cut])
    assert ids.tolist() == tokenizer.encode(text)


def test_a_text_without_a_line_break_or_space_is_still_cut(small_pieces):
    text = "x" * 1000
    cut = list(pieces(whole(StringStream(text))))
    assert "".join(t for t, _, _ in cut) == text and len(cut) > 3


def test_streamed_fits_equal_whole_fits(small_pieces):
    text = corpus(100)
    rng = whole(StringStream(text))
    for kind in ("word", "char"):
        fitted = token_files.fit_tokenizer(kind, rng, 300, 10**9, str.lower)
        assert fitted.to_json() == KINDS[kind].fit(text.lower(), 300).to_json()


def test_bpe_fits_on_a_sample_spread_through_the_training_text(small_pieces):
    text = "".join(f"part{k} " * 40 + "\n" for k in range(100))
    rng = whole(StringStream(text))
    sample = list(token_files.sample_pieces(rng, fit_chars=len(text) // 5, transform=str))
    size = sum(len(t) for t in sample)
    assert len(text) // 6 < size < len(text) // 4
    # from the start, the middle and the end of the text, not its first fifth only
    assert "part0 " in sample[0] and any("part5" in t for t in sample) and any("part9" in t for t in sample[-2:])


def text_module(tmp_path, *overrides):
    cfg = make_cfg(tmp_path, "model=lm", "data=text", f"data.cache_dir={tmp_path / 'cache'}", *overrides)
    return instantiate(cfg.data)


def prepared_ids(dm) -> dict[str, list[int]]:
    dm.prepare_data()
    dm.setup()
    return {split: np.asarray(ids).tolist() for split, ids in dm.ids.items()}


def test_worker_processes_write_what_one_process_writes(tmp_path, monkeypatch):
    path = tmp_path / "corpus.txt"
    path.write_text(corpus(3000))
    monkeypatch.setattr(text_pieces, "PIECE_CHARS", 4000)
    monkeypatch.setattr(token_files, "PARALLEL_FROM_CHARS", 0)
    one = prepared_ids(text_module(tmp_path / "one", f"data.path={path}", "data.vocab_size=300", "data.num_proc=1"))
    two = prepared_ids(text_module(tmp_path / "two", f"data.path={path}", "data.vocab_size=300", "data.num_proc=2"))
    assert one == two
    assert sum(map(len, one.values())) > 10_000


def test_an_interrupted_preparation_resumes_and_is_never_read_half_written(tmp_path, monkeypatch, caplog):
    path = tmp_path / "corpus.txt"
    path.write_text(corpus(2000))
    monkeypatch.setattr(text_pieces, "PIECE_CHARS", 3000)
    overrides = (f"data.path={path}", "data.vocab_size=300", "data.num_proc=1")
    reference = prepared_ids(text_module(tmp_path / "reference", *overrides))

    saves = 0
    original = token_files.PartialCache.save

    def killed_after_five(self):
        nonlocal saves
        saves += 1
        original(self)
        if saves == 5:
            raise KeyboardInterrupt  # as Ctrl-C or a kill would stop it, between two pieces

    monkeypatch.setattr(token_files.PartialCache, "save", killed_after_five)
    dm = text_module(tmp_path, *overrides)
    with pytest.raises(KeyboardInterrupt):
        dm.prepare_data()
    cache = dm.cache_dir()
    assert not cache.exists()  # only the partial folder: setup would prepare, not read it
    partial = cache.with_name(f".{cache.name}.partial")
    progress = json.loads((partial / "progress.json").read_text())
    assert progress["train"]["chars"] > 0 and not progress["train"]["done"]
    # a few stray bytes past the recorded progress, as a kill mid-write leaves, are written over
    with open(partial / "train.bin", "ab") as f:
        f.write(b"\xff" * 7)
    monkeypatch.setattr(token_files.PartialCache, "save", original)
    caplog.set_level("INFO", logger="genkit")
    assert prepared_ids(text_module(tmp_path, *overrides)) == reference
    assert "Resuming the preparation of text train at character" in caplog.text
    assert not partial.exists()


def test_a_full_disk_is_one_paragraph_and_leaves_no_cache(tmp_path, monkeypatch):
    path = tmp_path / "corpus.txt"
    path.write_text(corpus(200))

    dm = text_module(tmp_path, f"data.path={path}", "data.vocab_size=300")
    monkeypatch.setattr(token_files, "_encode", lambda *a: _Unwritable())
    with pytest.raises(GenkitError, match="filled up while genkit was writing the train tokens") as err:
        dm.prepare_data()
    assert "resumes where it stopped" in str(err.value)
    assert not dm.cache_dir().exists()


class _Unwritable:
    """ids whose bytes cannot be written: the disk is full."""

    def __len__(self) -> int:
        return 1

    def tobytes(self) -> bytes:
        raise OSError(28, "No space left on device")


@pytest.mark.slow
def test_a_corpus_larger_than_a_memory_cap_prepares_within_it(tmp_path):
    """40 MB of text, one token per character, under a cap of 250 MB of data memory over what the
    process holds after its imports: the whole-text preparation ran out of memory under it."""
    path = tmp_path / "corpus.txt"
    block = corpus(5000)
    with open(path, "w") as f:
        while f.tell() < 40_000_000:
            f.write(block)
    setup = f"""
        from hydra.utils import instantiate
        from tests.helpers import make_cfg
        from pathlib import Path
        cfg = make_cfg(Path({str(tmp_path)!r}), "model=lm", "data=text", "data.path={path}",
                       "data.cache_dir={tmp_path / "cache"}", "data.tokenizer=char", "data.vocab_size=64",
                       "data.num_proc=2")
        dm = instantiate(cfg.data)
        """
    body = """
        dm.prepare_data()
        dm.setup()
        print("TOKENS", len(dm.ids["train"]) + len(dm.ids["val"]) + len(dm.ids["test"]))
        """
    out = run_under_memory_cap(setup, body, 250_000_000)
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.split("TOKENS")[1]) == path.stat().st_size  # one token per (ASCII) character
