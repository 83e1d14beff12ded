"""data=pairs: reading records, completion-only targets, padding, cutting, label sets."""

import csv
import json
import logging

import pytest
import torch

from genkit.data.pairs import PairBatches, PairsDataModule
from genkit.data.records import chat_pair
from genkit.data.text import IGNORE_INDEX
from genkit.errors import GenkitError
from genkit.models.linear_cross_entropy import linear_cross_entropy
from genkit.models.nets.lstm import LSTMLanguageModel
from genkit.models.nets.transformer import Transformer
from tests.pairs_helpers import write_tiny_pairs


def _module(tmp_path, **kw):
    options = {"name": "pairs", "tokenizer": "char", "vocab_size": 200, "block_size": 48, **kw}
    if not any(k in options for k in ("path", "files", "dataset")):
        options["path"] = str(write_tiny_pairs(tmp_path / "d"))
    dm = PairsDataModule(**options)
    dm.setup()
    return dm


def test_targets_are_the_completion_and_its_end_only(tmp_path):
    dm = _module(tmp_path)
    x, y = PairBatches(dm.rows["train"], dm.tokenizer.bos_id).__getitems__([0, 1])
    for b, (prompt_len, ids) in enumerate(dm.rows["train"][:2]):
        completion = dm.records["train"][b]["completion"]
        assert (y[b, : prompt_len - 1] == IGNORE_INDEX).all()
        assert dm.tokenizer.decode(y[b, prompt_len - 1 : len(ids) - 2].tolist()) == completion
        assert y[b, len(ids) - 2] == dm.tokenizer.bos_id  # the closing end-of-text
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
    x, y = PairBatches(dm.rows["train"], dm.tokenizer.bos_id).__getitems__([0, 1, 2])
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
    assert [len(dm.records[s]) for s in ("train", "val", "test")] == [20, 4, 3]
    assert dm.labels == ["no", "yes"]


def test_one_file_is_cut_by_fractions_and_free_text_has_no_labels(tmp_path):
    folder = write_tiny_pairs(tmp_path / "t", "text")
    dm = _module(tmp_path, path=str(folder / "train.jsonl"), fractions={"train": 0.8, "val": 0.1, "test": 0.1})
    assert [len(dm.records[s]) for s in ("train", "val", "test")] == [48, 6, 6]
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
    assert [len(dm.records[s]) for s in ("train", "val", "test")] == [20, 2, 2]
    assert dm.labels == ["answer 0", "answer 1", "answer 2", "answer 3"]
