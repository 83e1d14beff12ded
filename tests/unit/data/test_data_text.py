import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from genkit.data.tokenizers import CharTokenizer, WordTokenizer
from genkit.errors import GenkitError
from genkit.loss_targets import IGNORE_INDEX
from tests.helpers import SHARED_DATA, make_cfg, needs_shared

LINES = ["the cat sat", "the dog sat on the mat", "a cat"]


def write_ptb_like(folder, lines=LINES):
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid", "test"):
        (folder / f"ptb.{split}.txt").write_text("".join(f" {line} \n" for line in lines))
    return folder


def text_module(tmp_path, *overrides):
    cfg = make_cfg(tmp_path, "model=lm", f"data.cache_dir={tmp_path / 'cache'}", *overrides)
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup()
    return dm


def test_word_tokenizer_adds_eos_per_line():
    tok = WordTokenizer.fit("\n".join(LINES))
    assert tok.itos == ["the", "cat", "sat", "<eos>", "dog", "on", "mat", "a"]  # order of first appearance
    ids = tok.encode("the cat\na cat")
    assert ids.count(tok.stoi["<eos>"]) == 2
    assert tok.decode(ids).split() == ["the", "cat", "a", "cat"]


def test_ptb_like_vocab_and_every_token_evaluated_once(tmp_path):
    root = tmp_path / "data"
    write_ptb_like(root / "ptb")
    dm = text_module(
        tmp_path,
        "data=ptb",
        f"data.root={root}",
        "data.vocab_size=8",
        "data.block_size=4",
        "data.eval_batch_size=3",
    )
    assert dm.tokenizer.vocab_size == 8  # 7 words + <eos>
    val_ids = np.asarray(dm.ids["val"]).tolist()
    assert len(val_ids) == 3 + 6 + 2 + 3  # words plus one <eos> per line
    targets = []
    for _, y in dm.val_dataloader():
        targets.extend(y[y != IGNORE_INDEX].tolist())
    # every token of the split is a target exactly once, in order
    assert targets == val_ids


def test_vocab_size_too_small_is_a_clear_error(tmp_path):
    root = tmp_path / "data"
    write_ptb_like(root / "ptb")
    with pytest.raises(GenkitError, match="data.vocab_size=8"):
        text_module(tmp_path, "data=ptb", f"data.root={root}", "data.vocab_size=5")


def test_char_fractions_and_test_falls_back_to_val(tmp_path):
    root = tmp_path / "data"
    (root / "tinyshakespeare").mkdir(parents=True)
    text = "".join(chr(ord("a") + i % 26) for i in range(1000))
    (root / "tinyshakespeare" / "input.txt").write_text(text)
    dm = text_module(tmp_path, "data=tinyshakespeare", f"data.root={root}", "data.block_size=16")
    assert isinstance(dm.tokenizer, CharTokenizer)
    assert len(dm.ids["train"]) == 900 and len(dm.ids["val"]) == 100
    assert dm.tokenizer.decode(np.asarray(dm.ids["val"][:3]).tolist()) == text[900:903]
    x, y = next(iter(dm.test_dataloader()))
    assert y[0, 0].item() == dm.ids["val"][0]
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (32, 16) and torch.equal(x[:, 1:], y[:, :-1])


def test_text_bpe_is_trained_once_and_cached(tmp_path, caplog):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(3):
        (corpus / f"part{i}.txt").write_text("\n".join(f"line {j} of part {i}: hello world" for j in range(200)))
    dm = text_module(tmp_path, "data=text", f"data.path={corpus}", "data.vocab_size=300", "data.block_size=16")
    assert 256 < dm.tokenizer.vocab_size <= 300
    assert dm.tokenizer.decode(dm.tokenizer.encode("hello world")) == "hello world"
    cache = dm.cache_dir()
    stamp = (cache / "train.bin").stat().st_mtime_ns
    dm2 = text_module(tmp_path, "data=text", f"data.path={corpus}", "data.vocab_size=300", "data.block_size=16")
    assert dm2.cache_dir() == cache and (cache / "train.bin").stat().st_mtime_ns == stamp
    # changed text -> a new cache entry
    (corpus / "part0.txt").write_text("something else entirely\n" * 50)
    dm3 = text_module(tmp_path, "data=text", f"data.path={corpus}", "data.vocab_size=300", "data.block_size=16")
    assert dm3.cache_dir() != cache


def test_missing_user_text_is_a_clear_error(tmp_path):
    with pytest.raises(GenkitError, match="does not exist"):
        text_module(tmp_path, "data=text", f"data.path={tmp_path / 'nope.txt'}")


@needs_shared("ptb")
def test_shared_ptb_has_the_standard_vocabulary_and_size(tmp_path):
    dm = text_module(tmp_path, "data=ptb", f"data.root={SHARED_DATA}")
    assert dm.tokenizer.vocab_size == 10_000
    assert {k: len(v) for k, v in dm.ids.items()} == {"train": 929_589, "val": 73_760, "test": 82_430}


@needs_shared("tinyshakespeare")
def test_shared_tinyshakespeare_is_65_characters(tmp_path):
    dm = text_module(tmp_path, "data=tinyshakespeare", f"data.root={SHARED_DATA}")
    assert dm.tokenizer.vocab_size == 65
    assert len(dm.ids["train"]) == 1_003_854 and len(dm.ids["val"]) == 111_540


def test_training_windows_are_the_same_from_numpy_and_from_a_tensor():
    """The GPU-resident path (a torch tensor) yields the batches of the memory-mapped path."""
    from genkit.data.text import TrainWindows

    ids = np.arange(1000, dtype=np.uint16)
    torch.manual_seed(0)
    a = TrainWindows(ids, 16).__getitems__([0, 5, 61])
    torch.manual_seed(0)
    b = TrainWindows(torch.from_numpy(ids.astype(np.int64)), 16).__getitems__([0, 5, 61])
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


def test_a_llama_style_tokenizer_starts_texts_with_its_own_boundary_token(tmp_path):
    """A pretrained tokenizer.json whose post-processor puts <s> before every text (Llama's): genkit
    starts generation from <s> once, and its encoding adds no <s> of its own."""
    from tokenizers import Tokenizer, processors
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit

    from genkit.data.tokenizers import BPETokenizer

    hf = Tokenizer(WordLevel({"<unk>": 0, "<s>": 1, "hello": 2, "world": 3}, unk_token="<unk>"))
    hf.pre_tokenizer = WhitespaceSplit()
    hf.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    hf.save(str(tmp_path / "tokenizer.json"))
    tokenizer = BPETokenizer.from_pretrained(tmp_path)
    assert hf.encode("hello world").ids == [1, 2, 3]
    assert tokenizer.eot_id == 1 and tokenizer.encode("hello world") == [2, 3]


@pytest.mark.parametrize("module", ["TextDataModule", "PairsDataModule", "HFTextDataModule"])
def test_text_fine_tuning_reads_the_tokenizer_whichever_data_module_saved_it(tmp_path, module):
    """data=text started from a pairs (or hf_text) run encodes with that run's tokenizer."""
    import json

    from genkit.data.text import starting_tokenizer

    tokenizer = WordTokenizer(["<eos>", "the", "cat", "sat"])
    torch.save({module: {"tokenizer": json.dumps(tokenizer.to_json())}}, tmp_path / "run.ckpt")
    assert starting_tokenizer(tmp_path / "run.ckpt").encode("the cat sat") == tokenizer.encode("the cat sat")
    torch.save({"state_dict": {}}, tmp_path / "image.ckpt")
    with pytest.raises(GenkitError, match="carries no tokenizer"):
        starting_tokenizer(tmp_path / "image.ckpt")
