"""Loading a Hugging Face GPT-2 checkpoint into genkit's own Transformer, without any download."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from genkit.commands.train import train  # noqa: E402
from genkit.data.tokenizers import BPETokenizer  # noqa: E402
from genkit.training.build import build_model  # noqa: E402
from tests.helpers import make_cfg  # noqa: E402

TEXT = "\n".join(f"sentence number {i} says hello to the tiny model" for i in range(300))


@pytest.fixture
def tiny_gpt2(tmp_path):
    """A tiny random GPT-2 and its byte-level BPE tokenizer, saved as a HF checkpoint folder."""
    folder = tmp_path / "tiny-gpt2"
    tokenizer = BPETokenizer.fit(TEXT, vocab_size=320)
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=tokenizer.vocab_size,
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=2,
    )
    model = transformers.GPT2LMHeadModel(config).eval()
    model.save_pretrained(folder)
    tokenizer.tokenizer.save(str(folder / "tokenizer.json"))
    return folder, model


def test_logits_equal_hugging_face(tmp_path, tiny_gpt2):
    folder, hf_model = tiny_gpt2
    cfg = make_cfg(tmp_path, "model=lm", f"model.init_from={folder}", "data=ptb", "data.block_size=64")
    assert cfg.model.net.n_embd == 32 and cfg.data.vocab_size == hf_model.config.vocab_size
    assert cfg.model.net.gelu == "tanh"  # GPT-2's approximation; a new network's default is exact
    model = build_model(cfg).eval()
    idx = torch.randint(0, hf_model.config.vocab_size, (2, 40))
    with torch.no_grad():
        expected = hf_model(idx).logits
    torch.testing.assert_close(model(idx), expected, atol=1e-5, rtol=0)


def test_fine_tune_a_few_steps(tmp_path, tiny_gpt2):
    folder, _ = tiny_gpt2
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    cfg = make_cfg(
        tmp_path,
        "model=lm",
        f"model.init_from={folder}",
        "data=text",
        f"data.path={corpus}",
        "data.block_size=32",
        "data.batch_size=4",
        f"data.cache_dir={tmp_path}/cache",
        "trainer.max_steps=3",
        "trainer.accelerator=cpu",
        "trainer.precision=32-true",
        "model.warmup_steps=1",
    )
    metrics = train(cfg)
    assert metrics["val/ppl"] > 1
    # the data used the checkpoint's tokenizer, not a newly trained one
    from hydra.utils import instantiate

    dm = instantiate(cfg.data)
    dm.setup()
    pretrained = BPETokenizer.from_pretrained(folder)
    assert dm.tokenizer.vocab_size == pretrained.vocab_size == cfg.data.vocab_size
    assert dm.tokenizer.encode("hello world") == pretrained.encode("hello world")


@pytest.mark.slow
def test_lora_on_gpt2_as_the_readme_says(tmp_path, tiny_gpt2):
    """docs/fine-tuning.md: `genkit train model=lm model.init_from=gpt2 finetune.lora.r=8 data=text
    data.path=<folder>`, on a tiny random GPT-2 folder instead of the hub's."""
    import json

    from tests.helpers import cli_in_process

    folder, _ = tiny_gpt2
    texts = tmp_path / "my_texts"
    texts.mkdir()
    for i in range(3):
        (texts / f"part{i}.txt").write_text(TEXT)
    run = tmp_path / "run"
    args = [
        "model=lm", f"model.init_from={folder}", "finetune.lora.r=8", "data=text", f"data.path={texts}",
        "data.block_size=32", "data.batch_size=4", f"data.cache_dir={tmp_path}/cache", "trainer.max_steps=3",
        "trainer.accelerator=cpu", "trainer.precision=32-true", "model.warmup_steps=1", f"hydra.run.dir={run}",
    ]  # fmt: skip
    out = cli_in_process("train", *args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    gpt2 = build_model(make_cfg(tmp_path / "ref", *[a for a in args if a.startswith(("model", "data"))]))
    trained = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    for name, value in gpt2.state_dict().items():
        adapted = name.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")
        assert torch.equal(trained.get(adapted, trained.get(name)), value), name
    # eval scores GPT-2 as it was beside the adapted model
    out = cli_in_process("eval", f"ckpt={run}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads((run / "eval.json").read_text())
    assert report["before"]["init_from"] == str(folder) and report["before"]["test/ppl"] > 1
