"""`data=hf_text data.streaming=true`: rows read as an IterableDataset while they are tokenised.

Offline, as test_data_hf_text: the streamed datasets are packaged builders (text, json) over files
the tests write, which `load_dataset(..., streaming=True)` reads as it would read a Hub dataset's.
"""

import numpy as np
import pytest
from hydra.utils import instantiate

from genkit.errors import GenkitError
from tests.cli.test_bad_input import assert_one_paragraph
from tests.helpers import cli_in_process, make_cfg
from tests.unit.data.test_data_hf_text import (
    TINY_RUN,
    module,
    offline_hugging_face,  # noqa: F401 (autouse: offline, with a Hugging Face cache of the test's own)
    save,
    words,
)


def write_lines(path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize("layout", ["one file cut by fractions", "a file per split"])
def test_streamed_rows_give_the_token_ids_of_the_downloaded_dataset(tmp_path, layout):
    if layout == "a file per split":  # whole splits, none cut
        files = {
            "train": write_lines(tmp_path / "train.txt", [words(i) for i in range(80)]),
            "validation": write_lines(tmp_path / "valid.txt", [words(i + 3) for i in range(12)]),
        }
        source = ["data.data_files={" + ",".join(f"{k}:'{v}'" for k, v in files.items()) + "}"]
        tokenizer, splits = ["data.tokenizer=char", "data.vocab_size=64"], {"train", "val"}
    else:  # train cut 90/5/5, so the stream is counted first; a BPE fitted on it
        source = [f"data.data_files={write_lines(tmp_path / 'corpus.txt', [words(i) for i in range(150)])}"]
        tokenizer, splits = ["data.tokenizer=bpe", "data.vocab_size=300"], {"train", "val", "test"}
    given = ("data=hf_text", "data.dataset=text", *source, *tokenizer)

    streamed = module(tmp_path, *given, "data.streaming=true")
    # nothing of the data set was written as Arrow: only genkit's token cache
    assert not list((tmp_path / "hf").rglob("*.arrow"))
    downloaded = module(tmp_path, *given)
    assert streamed.cache_dir() != downloaded.cache_dir()
    assert set(streamed.ids) == set(downloaded.ids) == splits
    for split in streamed.ids:
        assert len(streamed.ids[split]) > 0
        np.testing.assert_array_equal(np.asarray(streamed.ids[split]), np.asarray(downloaded.ids[split]))
    assert streamed.tokenizer.to_json() == downloaded.tokenizer.to_json()


def test_streamed_cache_is_keyed_by_what_names_the_data(tmp_path):
    corpus = write_lines(tmp_path / "corpus.txt", [words(i) for i in range(30)])

    def key(*overrides):
        cfg = make_cfg(tmp_path, "model=lm", "data=hf_text", f"data.cache_dir={tmp_path / 'tokens'}", *overrides)
        return instantiate(cfg.data, _convert_="partial").cache_dir()

    first = key("data.dataset=text", f"data.data_files={corpus}", "data.streaming=true")
    assert key("data.dataset=text", f"data.data_files={corpus}", "data.streaming=true") == first
    assert key("data.dataset=text", f"data.data_files={corpus}", "data.streaming=true", "data.revision=v2") != first
    assert key("data.dataset=text", f"data.data_files={corpus}", "data.streaming=true", "data.vocab_size=500") != first
    # a save_to_disk folder is on disk already: streaming is ignored, its fingerprints key the cache
    folder = save(tmp_path / "local", train=[words(i) for i in range(30)])
    assert key(f"data.dataset={folder}", "data.streaming=true") == key(f"data.dataset={folder}")


def streamed_module(tmp_path, builder: str, file: str, column: str):
    cfg = make_cfg(
        tmp_path, "model=lm", "data=hf_text", f"data.dataset={builder}", f"data.data_files={file}",
        f"data.column={column}", "data.streaming=true", f"data.cache_dir={tmp_path / 'tokens'}",
    )  # fmt: skip
    return instantiate(cfg.data, _convert_="partial")


def test_a_missing_column_is_named_from_the_first_row_when_features_are_unknown(tmp_path):
    corpus = write_lines(tmp_path / "corpus.txt", [words(i) for i in range(10)])
    dm = streamed_module(tmp_path, "text", corpus, "body")
    assert dm._load()["train"].features is None  # the text builder streamed: features unknown until read
    with pytest.raises(GenkitError, match=r"data.column=body is not a column .* its columns are text\. "):
        dm.prepare_data()


def test_a_streamed_column_that_is_not_text_is_refused(tmp_path):
    records = tmp_path / "records.jsonl"
    records.write_text("".join(f'{{"text": "{words(i)}", "id": {i}}}\n' for i in range(10)))
    with pytest.raises(GenkitError, match=r"data.column=id .* not text.*its columns: text, id"):
        streamed_module(tmp_path, "json", str(records), "id").prepare_data()


# (overrides, with {files} the test writes filled in; words the one-paragraph message must contain);
# the text builder reads the files unless data.dataset is given
CASES = [
    (["data.data_files={corpus}", "data.streaming=maybe"], ["data.streaming='maybe'", "true or false"]),
    (["data.data_files={corpus}", "data.streaming=1"], ["data.streaming=1", "true or false"]),
    (["data.dataset=someone/not-cached", "data.streaming=true"], ["reads its rows from the Hub", "OFFLINE"]),
    (["data.data_files={blank}", "data.streaming=true"], ["no text in its 'text' column;", "data.column"]),
]


@pytest.mark.parametrize("overrides,expected", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_streaming_input_is_one_paragraph(tmp_path, overrides, expected):
    files = {
        "corpus": write_lines(tmp_path / "corpus.txt", [words(i) for i in range(20)]),
        "blank": write_lines(tmp_path / "blank.txt", ["", "  ", ""]),
    }
    builder = [] if any(o.startswith("data.dataset=") for o in overrides) else ["data.dataset=text"]
    args = ["data=hf_text", *builder, *(o.format(**files) for o in overrides), f"data.cache_dir={tmp_path / 'tokens'}"]
    out = cli_in_process("train", *TINY_RUN, *args, cwd=tmp_path)
    assert_one_paragraph(out, expected)
    assert not (tmp_path / "tokens").exists() or not any((tmp_path / "tokens").rglob("*.bin"))
