"""`data=hf_text` and `data=wikitext2`: text from Hugging Face datasets, offline only.

Every test runs with HF_DATASETS_OFFLINE=1 and the Hugging Face cache inside tmp_path: the
datasets are written by the tests (save_to_disk folders, text files), never fetched.
"""

import datasets
import numpy as np
import pytest
from hydra.utils import instantiate

from genkit.checkpoints.files import load_checkpoint
from genkit.commands.train import train
from tests.cli.test_bad_input import assert_one_paragraph
from tests.helpers import cli_in_process, make_cfg

TINY_RUN = (
    "model=lm",
    "model.net.n_layer=1",
    "model.net.n_head=2",
    "model.net.n_embd=32",
    "model.warmup_steps=1",
    "data.block_size=16",
    "data.batch_size=8",
    "data.eval_batch_size=8",
    "trainer.max_steps=2",
    "trainer.max_epochs=1",
    "trainer.accelerator=cpu",
    "trainer.precision=32-true",
)


@pytest.fixture(autouse=True)
def offline_hugging_face(tmp_path, monkeypatch):
    """Offline, with a cache of the test's own: the variables for what reads them later, and
    datasets' settings, which it read from them when first imported."""
    import huggingface_hub.constants

    home = tmp_path / "hf"
    for name, value in {
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(home),
        "HF_DATASETS_CACHE": str(home / "datasets"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", home / "datasets")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def words(i: int) -> str:
    return f"the {['cat', 'dog', 'bird'][i % 3]} number {i % 11} sat on mat {i % 7}"


def save(folder, **splits) -> str:
    """A DatasetDict of these splits (name -> rows of the text column), written by save_to_disk."""
    datasets.DatasetDict(
        {
            name: datasets.Dataset.from_dict({"text": rows, "id": list(range(len(rows)))})
            for name, rows in splits.items()
        }
    ).save_to_disk(str(folder))
    return str(folder)


def wikitext_like(n: int) -> list[str]:
    """Rows as Salesforce/wikitext has them: empty between paragraphs, lines ending in ' \\n'."""
    rows = []
    for i in range(n):
        rows += ["", f" = Heading {i % 5} = \n", "", f" {words(i)} , and <unk> ran @-@ off . \n"]
    return rows


def module(tmp_path, *overrides):
    cfg = make_cfg(tmp_path, "model=lm", f"data.cache_dir={tmp_path / 'tokens'}", *overrides)
    dm = instantiate(cfg.data, _convert_="partial")
    dm.prepare_data()
    dm.setup()
    return dm


def word_count(rows: list[str]) -> int:
    """Tokens of the word tokenizer: the words of each row, and one <eos> per row."""
    return sum(len(row.split()) + 1 for row in rows)


def test_local_dataset_trains_and_its_splits_are_its_rows(tmp_path):
    rows = {"train": [words(i) for i in range(400)], "validation": [words(i) for i in range(30)]}
    rows["test"] = [words(i + 5) for i in range(20)]
    folder = save(tmp_path / "local", **rows)
    tokens = f"data.cache_dir={tmp_path / 'tokens'}"
    metrics = train(
        make_cfg(tmp_path, *TINY_RUN, "data=hf_text", f"data.dataset={folder}", "data.vocab_size=300", tokens)
    )
    assert "val/loss" in metrics
    assert load_checkpoint(tmp_path / "outputs" / "run" / "checkpoints" / "last.ckpt")["global_step"] == 2
    # the same data with the word tokenizer: each split holds exactly its own rows' words
    dm = module(tmp_path, "data=hf_text", f"data.dataset={folder}", "data.tokenizer=word", "data.vocab_size=100")
    assert {split: len(ids) for split, ids in dm.ids.items()} == {
        "train": word_count(rows["train"]),
        "val": word_count(rows["validation"]),
        "test": word_count(rows["test"]),
    }
    assert dm.tokenizer.decode(np.asarray(dm.ids["test"][:4]).tolist()) == " ".join(rows["test"][0].split()[:4])


@pytest.mark.parametrize("splits", [("train",), ("train", "test")])
def test_a_dataset_without_validation_cuts_train_by_fractions(tmp_path, splits):
    rows = [words(i) for i in range(100)]
    folder = save(tmp_path / "local", **{name: rows if name == "train" else ["the cat sat"] for name in splits})
    dm = module(tmp_path, "data=hf_text", f"data.dataset={folder}", "data.tokenizer=char", "data.vocab_size=64")
    text = "\n".join(rows)
    sizes = {split: len(ids) for split, ids in dm.ids.items()}
    if "test" in splits:  # the dataset's own test split; train and val share train's text 90:5
        train_end = int(len(text) * 0.9 / 0.95)
        assert sizes == {"train": train_end, "val": len(text) - train_end, "test": len("the cat sat")}
    else:  # 90 / 5 / 5 of the characters, as data=text cuts a file
        val_end = int(len(text) * 0.9) + int(len(text) * 0.05)
        assert sizes == {
            "train": int(len(text) * 0.9),
            "val": val_end - int(len(text) * 0.9),
            "test": len(text) - val_end,
        }
    assert dm.tokenizer.decode(np.asarray(dm.ids["val"]).tolist()) == text[sizes["train"] :][: sizes["val"]]


def test_the_text_builder_reads_data_files_offline(tmp_path):
    lines = [words(i) for i in range(60)]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n")
    overrides = ("data=hf_text", "data.dataset=text", f"data.data_files={corpus}", "data.tokenizer=char")
    dm = module(tmp_path, *overrides, "data.vocab_size=64")
    # one train split, a row per line of the file, cut 90/5/5 by characters
    text = "\n".join(lines)
    assert sum(len(ids) for ids in dm.ids.values()) == len(text)
    assert dm.tokenizer.decode(np.asarray(dm.ids["train"]).tolist()) == text[: int(len(text) * 0.9)]


def test_changed_data_changes_the_cache_key(tmp_path):
    rows = [words(i) for i in range(50)]

    def key(*overrides):
        cfg = make_cfg(tmp_path, "model=lm", "data=hf_text", f"data.cache_dir={tmp_path / 'tokens'}", *overrides)
        return instantiate(cfg.data, _convert_="partial").cache_dir()

    first = key(f"data.dataset={save(tmp_path / 'a', train=rows)}")
    assert key(f"data.dataset={save(tmp_path / 'same', train=rows)}") == first  # same rows: same ids
    assert key(f"data.dataset={save(tmp_path / 'b', train=[*rows[:-1], 'a changed row'])}") != first
    assert key(f"data.dataset={tmp_path / 'a'}", "data.vocab_size=500") != first
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("one line\n")
    before = key("data.dataset=text", f"data.data_files={corpus}")
    corpus.write_text("another line\n")
    assert key("data.dataset=text", f"data.data_files={corpus}") != before


@pytest.mark.slow
def test_wikitext2_trains_from_a_local_copy(tmp_path):
    rows = {"train": wikitext_like(120), "validation": wikitext_like(8), "test": wikitext_like(6)}
    folder = save(tmp_path / "wikitext-2-v1", **rows)
    tokens = f"data.cache_dir={tmp_path / 'tokens'}"
    assert train(make_cfg(tmp_path, *TINY_RUN, "data=wikitext2", f"data.dataset={folder}", tokens))["val/ppl"] > 0
    # found in <data root>/wikitext2 without data.dataset; one <eos> per row, as in the published counts
    save(tmp_path / "root" / "wikitext2", **rows)
    dm = module(tmp_path, "data=wikitext2", f"data.root={tmp_path / 'root'}")
    assert "<unk>" in dm.tokenizer.itos
    assert {split: len(ids) for split, ids in dm.ids.items()} == {
        "train": word_count(rows["train"]),
        "val": word_count(rows["validation"]),
        "test": word_count(rows["test"]),
    }


def write_configs_folder(folder):
    """A dataset folder with two configs, as a Hub repository declares them in its card."""
    folder.mkdir()
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: small\n  data_files: small.txt\n"
        "- config_name: large\n  data_files: large.txt\n---\n"
    )
    for name in ("small", "large"):
        (folder / f"{name}.txt").write_text(f"{name} text\n")
    return folder


# (overrides, with {folders} of test data filled in; words the message must contain)
CASES = [
    (["data.dataset={local}", "data.column=body"], ["data.column=body", "text, id"]),
    (["data.dataset={local}", "data.column=id"], ["data.column=id", "not text"]),
    (["data.dataset=someone/not-cached"], ["HF_DATASETS_OFFLINE", "save_to_disk", "local copy"]),
    (["data=wikitext2"], ["Salesforce/wikitext", "HF_DATASETS_OFFLINE", "wikitext2"]),
    (["data=hf_text"], ["data.dataset has no value", "pass data.dataset=<value>"]),
    (["data.dataset={tmp}/missing/folder"], ["cannot be found", "save_to_disk"]),
    (["data.dataset=text", "data.data_files={tmp}/none.txt"], ["cannot be found", "none.txt"]),
    (["data.dataset={configs}/small.txt"], ["is a file", "data.dataset=text", "data.data_files="]),
    (["data.dataset={configs}", "data.config=medium"], ["data.config=medium", "small, large"]),
    (["data.dataset={configs}"], ["data.config is not set", "small, large"]),
    (["data.dataset={empty}"], ["no text", "data.column"]),
]


@pytest.mark.parametrize("overrides,expected", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_hugging_face_input_is_one_paragraph(tmp_path, overrides, expected):
    folders = {
        "tmp": tmp_path,
        "local": save(tmp_path / "local", train=[words(i) for i in range(20)]),
        "configs": write_configs_folder(tmp_path / "configs"),
        "empty": save(tmp_path / "empty", train=["", "  ", "\n"]),
    }
    data = [] if overrides[0].startswith("data=") else ["data=hf_text"]
    args = [*data, *(o.format(**folders) for o in overrides), f"data.cache_dir={tmp_path / 'tokens'}"]
    out = cli_in_process("train", *TINY_RUN, *args, cwd=tmp_path)
    assert_one_paragraph(out, expected)
    assert not (tmp_path / "tokens").exists() or not any((tmp_path / "tokens").rglob("*.bin"))
