"""data=pairs: reading records, completion-only targets, padding, cutting, label sets."""

import csv
import json
import logging

import pytest
import torch

from genkit.data.pair_rows import PairBatches
from genkit.data.pairs import PairsDataModule
from genkit.data.records import chat_pair, read_rows
from genkit.errors import GenkitError
from genkit.loss_targets import IGNORE_INDEX
from genkit.models.linear_cross_entropy import linear_cross_entropy
from genkit.models.nets.lstm import LSTMLanguageModel
from genkit.models.nets.transformer import Transformer
from tests.pairs_helpers import write_tiny_pairs


def _module(tmp_path, **kw):
    options = {"name": "pairs", "tokenizer": "char", "vocab_size": 200, "block_size": 48,
               "cache_dir": str(tmp_path / "cache"), **kw}  # fmt: skip
    if not any(k in options for k in ("path", "files", "dataset")):
        options["path"] = str(write_tiny_pairs(tmp_path / "d"))
    dm = PairsDataModule(**options)
    dm.setup()
    return dm


def test_targets_are_the_completion_and_its_end_only(tmp_path):
    dm = _module(tmp_path)
    x, y = PairBatches(dm.rows["train"], dm.tokenizer.eot_id).__getitems__([0, 1])
    lines = (tmp_path / "d" / "train.jsonl").read_text().splitlines()
    for b, (prompt_len, ids) in enumerate(dm.rows["train"][:2]):
        completion = json.loads(lines[b])["completion"]
        assert (y[b, : prompt_len - 1] == IGNORE_INDEX).all()
        assert dm.tokenizer.decode(y[b, prompt_len - 1 : len(ids) - 2].tolist()) == completion
        assert y[b, len(ids) - 2] == dm.tokenizer.eot_id  # the closing end-of-text
        assert (y[b, len(ids) - 1 :] == IGNORE_INDEX).all()  # padding to the longer row


@pytest.mark.parametrize("net_class", [Transformer, LSTMLanguageModel])
def test_prompt_tokens_get_no_gradient(tmp_path, net_class):
    """The loss has no term for predicting prompt tokens: the hidden states at those positions
    get exactly zero gradient, those predicting the completion do not."""
    dm = _module(tmp_path)
    torch.manual_seed(0)
    sizes = {"n_head": 4} if net_class is Transformer else {}
    net = net_class(vocab_size=200, block_size=48, n_layer=1, n_embd=32, **sizes)
    net.eval()  # no dropout: the zero gradients are exact
    x, y = PairBatches(dm.rows["train"], dm.tokenizer.eot_id).__getitems__([0, 1, 2])
    h, _ = net.hidden(x)
    h.retain_grad()
    linear_cross_entropy(h.flatten(0, 1), net.lm_head.weight, y.flatten(), IGNORE_INDEX).backward()
    grad = h.grad.abs().sum(-1)  # (B, T)
    assert (grad[y == IGNORE_INDEX] == 0).all()
    assert (grad[y != IGNORE_INDEX] > 0).all()


def test_folder_csv_parquet_and_validation_name(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    rows = [{"q": f"q{i}", "a": "yes" if i % 2 else "no"} for i in range(20)]
    with open(folder / "train.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["q", "a"])
        w.writeheader()
        w.writerows(rows)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows[:4]), folder / "validation.parquet")
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:3]))
    dm = _module(tmp_path, path=str(folder), prompt_key="q", completion_key="a")
    assert [len(dm.rows[s]) for s in ("train", "val", "test")] == [20, 4, 3]
    assert dm.labels == ["no", "yes"]


def test_one_file_is_cut_by_fractions_and_free_text_has_no_labels(tmp_path):
    folder = write_tiny_pairs(tmp_path / "t", "text")
    dm = _module(tmp_path, path=str(folder / "train.jsonl"), fractions={"train": 0.8, "val": 0.1, "test": 0.1})
    assert [len(dm.rows[s]) for s in ("train", "val", "test")] == [48, 6, 6]
    assert dm.labels is None


def test_chat_messages_are_flattened_by_the_template():
    prompt, completion = chat_pair(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], "x line 1"
    )
    assert (prompt, completion) == ("user: hi\nassistant:", " hello")


def test_long_records_are_cut_with_one_warning(tmp_path, caplog):
    folder = tmp_path / "long"
    folder.mkdir()
    records = [{"prompt": "p", "completion": "x" * (40 if i < 3 else 5)} for i in range(20)]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    with caplog.at_level(logging.WARNING):
        dm = _module(tmp_path, path=str(folder), block_size=16)
    warnings = [r.getMessage() for r in caplog.records if "longer than data.block_size" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("3 of the")
    assert max(len(ids) for _, ids in dm.rows["train"]) == 17


def test_a_record_without_the_keys_names_its_line(tmp_path):
    folder = write_tiny_pairs(tmp_path / "d")
    with open(folder / "train.jsonl", "a") as f:
        f.write(json.dumps({"question": "x"}) + "\n")
    with pytest.raises(GenkitError, match=r"train.jsonl line 61 has no 'prompt' and no 'completion'"):
        _module(tmp_path, path=str(folder))


def test_long_prompts_cut_keeps_their_ends(tmp_path, caplog):
    folder = tmp_path / "longp"
    folder.mkdir()
    records = [{"prompt": ("abcdefghij" * 3 if i == 0 else "ab"), "completion": "xyz"} for i in range(20)]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(GenkitError, match="no room for a completion"):
        _module(tmp_path, path=str(folder), block_size=16)
    with caplog.at_level(logging.WARNING):
        dm = _module(tmp_path, path=str(folder), block_size=16, long_prompts="cut")
    assert any(r.getMessage().startswith("1 of the") and "starts are cut" in r.getMessage() for r in caplog.records)
    prompt_len, ids = dm.rows["train"][0]
    assert len(ids) == 16 and dm.tokenizer.decode(ids[1:prompt_len]).endswith("hij")


def test_a_hugging_face_dataset_folder(tmp_path):
    import datasets

    rows = [{"q": f"question {i}", "a": f" answer {i % 4}"} for i in range(24)]
    splits = {"train": rows[:20], "validation": rows[20:22], "test": rows[22:]}
    datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items()}).save_to_disk(tmp_path / "hf")
    dm = _module(tmp_path, dataset=str(tmp_path / "hf"), prompt_key="q", completion_key="a")
    assert [len(dm.rows[s]) for s in ("train", "val", "test")] == [20, 2, 2]
    assert dm.labels == ["answer 0", "answer 1", "answer 2", "answer 3"]


def _jsonl(folder, records, name="train.jsonl"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


GOOD = [{"prompt": f"item {i}", "completion": "yes" if i % 2 else "no"} for i in range(20)]


# (the third record, words the message must hold)
NOT_TEXT = [
    ({"prompt": None, "completion": "yes"}, ["line 3: the 'prompt' field is null", "fill it in"]),
    ({"prompt": "x", "completion": 3}, ["line 3: the 'completion' field is a number (3)", '"completion": "3"']),
    ({"prompt": "x", "completion": 2.5}, ["the 'completion' field is a number (2.5)"]),
    ({"prompt": "x", "completion": True}, ["the 'completion' field is true/false (true)"]),
    ({"prompt": ["a", "b"], "completion": "yes"},
     ["the 'prompt' field is a list ([\"a\", \"b\"])", "join the list's items"]),
    ({"prompt": "x", "completion": {"label": "yes"}},
     ["the 'completion' field is an object ({\"label\": \"yes\"})", "not an object holding it"]),
    ({"messages": [{"role": "user", "content": 7}, {"role": "assistant", "content": "hi"}]},
     ["line 3: the 'messages[0].content' field is a number (7)"]),
]  # fmt: skip


@pytest.mark.parametrize("record,words", NOT_TEXT, ids=[json.dumps(c[0]) for c in NOT_TEXT])
def test_a_prompt_or_completion_that_is_not_text_is_refused_by_line_and_field(tmp_path, record, words):
    folder = _jsonl(tmp_path / "d", [*GOOD[:2], record, *GOOD[2:]])
    with pytest.raises(GenkitError) as err:
        _module(tmp_path, path=str(folder))
    message = str(err.value)
    assert str(folder / "train.jsonl") in message
    for word in words:
        assert word in message, (word, message)


def test_not_text_in_csv_parquet_and_a_hugging_face_dataset_names_the_row(tmp_path):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    csv_file = tmp_path / "short.csv"
    csv_file.write_text("prompt,completion\na,yes\nb,no\nc\n")  # line 4 has no completion field
    with pytest.raises(GenkitError, match=r"short.csv line 4: the 'completion' field is null \(a CSV line with fewer"):
        _module(tmp_path, path=str(csv_file))
    rows = [{"prompt": f"p{i}", "completion": i % 2} for i in range(20)]  # labels as numbers, not "0" / "1"
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "labels.parquet")
    with pytest.raises(GenkitError, match=r"labels.parquet row 1: the 'completion' field is a number \(0\)"):
        _module(tmp_path, path=str(tmp_path / "labels.parquet"))
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(tmp_path / "hf")
    with pytest.raises(GenkitError, match=r"hf train row 1: the 'completion' field is a number \(0\).*string column"):
        _module(tmp_path, dataset=str(tmp_path / "hf"))


def test_a_line_over_max_record_bytes_is_refused_by_its_number_without_reading_it(tmp_path):
    import tracemalloc

    folder = _jsonl(tmp_path / "d", GOOD)
    longest = max(len(line) for line in (folder / "train.jsonl").read_bytes().splitlines(keepends=True))
    assert _module(tmp_path, path=str(folder), max_record_bytes=longest).rows["train"]  # just fits, line end and all
    with pytest.raises(GenkitError, match=f"is longer than data.max_record_bytes={longest - 1} bytes"):
        _module(tmp_path, path=str(folder), max_record_bytes=longest - 1)
    with open(folder / "train.jsonl", "a") as f:
        f.write(json.dumps({"prompt": "x" * 5_000_000, "completion": "yes"}) + "\n")
        f.write(json.dumps(GOOD[0]) + "\n")
    tracemalloc.start()
    with pytest.raises(GenkitError, match=r"train.jsonl line 21 is longer than data.max_record_bytes=1000 bytes"):
        read_rows(folder / "train.jsonl", 1000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 500_000  # the 5 MB line was never held (it was, whole, before the limit)
    with pytest.raises(GenkitError, match=r"train.jsonl line 21 is longer than data.max_record_bytes=1000 bytes"):
        _module(tmp_path, path=str(folder), max_record_bytes=1000)
    long_csv = tmp_path / "long.csv"
    long_csv.write_text("prompt,completion\na,yes\n" + "b" * 2000 + ",no\n")
    with pytest.raises(GenkitError, match=r"long.csv line 3 is longer than data.max_record_bytes=1000"):
        read_rows(long_csv, 1000)
    # a CSV field longer than csv's own 128 KiB limit is read when data.max_record_bytes allows it
    long_csv.write_text('prompt,completion\n"' + "b" * 200_000 + '",no\n')
    assert len(read_rows(long_csv)[0][1]["prompt"]) == 200_000


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv"])
def test_a_utf8_byte_order_mark_is_skipped(tmp_path, suffix):
    rows = [{"prompt": f"café {i}", "completion": "yes" if i % 2 else "no"} for i in range(20)]
    if suffix == ".jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    elif suffix == ".json":
        text = json.dumps(rows, ensure_ascii=False)
    else:
        text = "prompt,completion\r\n" + "".join(f"{r['prompt']},{r['completion']}\r\n" for r in rows)
    path = tmp_path / f"train{suffix}"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))  # as Excel and Notepad write UTF-8
    dm = _module(tmp_path, path=str(path), fractions={"train": 1.0})
    assert len(dm.rows["train"]) == 20
    assert dm.tokenizer.decode(dm.rows["train"][0][1]) == "\ncafé 0no\n"  # [eot] prompt completion [eot]
    assert (dm.records["val"][0]["prompt"], dm.records["val"][0]["completion"]) == ("café 19", "yes")


@pytest.mark.slow
def test_records_several_times_a_memory_cap_encode_within_it(tmp_path):
    """150,000 records under a cap of 100 MB of data memory over what the process holds after its
    imports: every record as a dict and every row as a list of ints (before) is ~400 MB here."""
    from tests.helpers import run_under_memory_cap

    folder = tmp_path / "big"
    folder.mkdir()
    for split, n in (("train", 150_000), ("val", 500), ("test", 500)):
        with open(folder / f"{split}.jsonl", "w") as f:
            for i in range(n):
                f.write(json.dumps({"prompt": f"item {i} of the records, " * 2, "completion": "xy"[i % 2]}))
                f.write("\n")
    setup = (
        "from genkit.data.pairs import PairsDataModule\n"
        f"dm = PairsDataModule(name='pairs', tokenizer='char', vocab_size=200, block_size=128, path={str(folder)!r}, "
        f"cache_dir={str(tmp_path / 'cache')!r})\n"
    )
    body = "dm.setup()\nprint('ROWS', len(dm.rows['train']), dm.labels, len(dm.records['test']))\n"
    out = run_under_memory_cap(setup, body, 100_000_000)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ROWS 150000 ['x', 'y'] 500" in out.stdout


def test_chat_records_train_with_the_template_that_serve_and_exports_render():
    from genkit.data.chat import GENKIT_CHAT_TEMPLATE, render_chat
    from genkit.data.records import chat_pair

    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "what is {x}?"},
        {"role": "assistant", "content": "a letter"},
    ]
    prompt, completion = chat_pair(messages, "line 1")
    assert render_chat(GENKIT_CHAT_TEMPLATE, messages[:-1], "<|endoftext|>") == prompt
    assert completion == " a letter"
