"""Fine-tuning: a GPT started from a genkit run (its sizes and tokenizer carried over), freezing
by name, LoRA adapters for every family (only adapters train; base weights stay bit-identical),
`genkit export merge=true`, and the before / after report of `genkit eval`."""

import json
from pathlib import Path

import pytest
import torch

from genkit.checkpoints.starting_weights import starting_checkpoint
from genkit.commands.train import train
from genkit.errors import GenkitError
from genkit.training.build import build_datamodule, build_model
from genkit.training.restore import load_model
from tests.helpers import TINY_IMAGE_RUN, cli_in_process, make_cfg

SOURCE_TEXT = "\n".join(f"the quick brown fox {i % 7} jumps over the lazy dog" for i in range(400))
NEW_TEXT = "\n".join(f"To be, or not to be: That is the question {i % 5}!" for i in range(400))


def text_run(tmp_path: Path, text: str, *sizes: str) -> list[str]:
    """A character GPT on `text` written into tmp_path: a few seconds per run."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(text)
    return [
        "model=lm",
        "data=text",
        f"data.path={corpus}",
        "data.tokenizer=char",
        "data.token_unit=char",
        "data.block_size=16",
        "data.batch_size=8",
        f"data.cache_dir={tmp_path / 'cache'}",
        "trainer.max_steps=4",
        "trainer.max_epochs=1",
        "trainer.val_check_interval=4",
        "trainer.accelerator=cpu",
        "trainer.precision=32-true",
        *sizes,
    ]


SOURCE_SIZES = ("data.vocab_size=40", "model.net.n_layer=2", "model.net.n_head=2", "model.net.n_embd=32")


@pytest.fixture
def gpt_source(tmp_path) -> Path:
    """The run directory of a small character GPT on lower-case text."""
    train(make_cfg(tmp_path / "source", *text_run(tmp_path / "source", SOURCE_TEXT, *SOURCE_SIZES)))
    return tmp_path / "source" / "outputs" / "run"


def finetune_args(tmp_path: Path, source: Path, *extra: str) -> list[str]:
    # no sizes: they come from the starting run
    return [*text_run(tmp_path, NEW_TEXT), f"model.init_from={source}", *extra]


def test_a_gpt_starts_from_a_genkit_run_with_its_sizes_and_tokenizer(tmp_path, gpt_source):
    source_model, source_data, _ = load_model(starting_checkpoint(gpt_source))
    # capitals and punctuation are not in the starting run's characters: one paragraph, with the fixes
    out = cli_in_process("train", *finetune_args(tmp_path / "new", gpt_source), cwd=tmp_path)
    message = " ".join(out.stderr.split())
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert f"cannot be encoded with the vocabulary of the starting run {gpt_source}" in message
    assert "'!,:T'" in message and "data.lowercase=true" in message and "data.unknown_chars=drop" in message

    cfg = make_cfg(tmp_path / "new", *finetune_args(tmp_path / "new", gpt_source, "data.lowercase=true",
                                                    "data.unknown_chars=drop"))  # fmt: skip
    assert (cfg.model.net.n_layer, cfg.model.net.n_embd, cfg.model.net.bias) == (2, 32, True)
    started = build_model(cfg).eval()
    for (name, a), (_, b) in zip(source_model.state_dict().items(), started.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    datamodule = build_datamodule(cfg)
    datamodule.setup("fit")
    assert datamodule.tokenizer.itos == source_data.tokenizer.itos
    assert datamodule.decode_batch(torch.tensor([datamodule.prompt_ids("To be, or")])) == ["to be or"]
    # the first training loss of the new run is the starting model's loss on the same batch
    batch = next(iter(datamodule.val_dataloader()))
    assert torch.equal(source_model._loss(batch, "val")[0], started._loss(batch, "val")[0])


def test_a_shorter_context_keeps_the_first_positions(tmp_path, gpt_source):
    source_model, _, _ = load_model(starting_checkpoint(gpt_source))
    cfg = make_cfg(tmp_path / "new", *finetune_args(tmp_path / "new", gpt_source, "data.block_size=8",
                                                    "data.lowercase=true", "data.unknown_chars=' '"))  # fmt: skip
    started = build_model(cfg)
    assert torch.equal(started.net.wpe.weight, source_model.net.wpe.weight[:8])


def trained_state(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


@pytest.mark.slow
def test_freeze_and_train_only_keep_what_they_name(tmp_path, gpt_source, caplog):
    before = trained_state(gpt_source)
    fix = ("data.lowercase=true", "data.unknown_chars=drop")
    with caplog.at_level("INFO", logger="genkit"):
        train(make_cfg(tmp_path / "f", *finetune_args(tmp_path / "f", gpt_source, *fix,
                                                      "finetune.freeze=[net.wte.*,net.blocks.0.*]")))  # fmt: skip
    assert "trainable share" in caplog.text
    after = trained_state(tmp_path / "f" / "outputs" / "run")
    for name in before:
        frozen = name.startswith(("net.wte.", "net.lm_head.", "net.blocks.0."))  # lm_head is tied to wte
        assert torch.equal(before[name], after[name]) == frozen, name

    # biases and norms only (BitFit): no matrix is left for weight decay's parameter group
    train(make_cfg(tmp_path / "t", *finetune_args(tmp_path / "t", gpt_source, *fix,
                                                  "finetune.train_only=[*.bias,net.ln_f.*]")))  # fmt: skip
    after = trained_state(tmp_path / "t" / "outputs" / "run")
    for name in before:
        trained = name.endswith(".bias") or name.startswith("net.ln_f.")
        assert torch.equal(before[name], after[name]) != trained, name


@pytest.mark.slow
def test_a_gan_fine_tunes_with_its_discriminators_first_layer_fixed(tmp_path, tiny_data_root):
    """docs/fine-tuning.md: `genkit train data=fashion_mnist model.init_from=<gan run>
    finetune.freeze=[discriminator.net.0.*]`"""
    train(make_cfg(tmp_path / "source", f"data.root={tiny_data_root}", *TINY_IMAGE_RUN))
    source = tmp_path / "source" / "outputs" / "run"
    run = tmp_path / "fashion"
    out = cli_in_process("train", "data=fashion_mnist", f"model.init_from={source}",
                         "finetune.freeze=[discriminator.net.0.*]", *TINY_IMAGE_RUN, f"hydra.run.dir={run}",
                         cwd=tmp_path, env={"GENKIT_DATA_DIR": str(tiny_data_root)})  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    before, after = trained_state(source), trained_state(run)
    for name in before:
        assert torch.equal(before[name], after[name]) == name.startswith("discriminator.net.0."), name


# the same tiny image runs as tests/unit/training/test_init_from.py
IMAGE_FAMILIES = {
    "gan": ("model=gan",),
    "vae": ("model=vae", "model.test_nll_samples=2"),
    "diffusion": ("model=diffusion", "model.net.base=8", "model.sample_steps=2"),
}


def _base_name(name: str) -> str:
    return name.replace(".base_layer.", ".")


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gpt", *IMAGE_FAMILIES])
def test_lora_trains_only_adapters_and_export_merges_them(tmp_path, tiny_data_root, family):
    if family == "gpt":
        source = tmp_path / "source" / "outputs" / "run"
        train(make_cfg(tmp_path / "source", *text_run(tmp_path / "source", SOURCE_TEXT, *SOURCE_SIZES)))
        args = finetune_args(tmp_path / "lora", source, "data.lowercase=true", "data.unknown_chars=drop")
    else:
        image_run = (f"data.root={tiny_data_root}", *TINY_IMAGE_RUN, *IMAGE_FAMILIES[family])
        train(make_cfg(tmp_path / "source", *image_run))
        source = tmp_path / "source" / "outputs" / "run"
        args = [*image_run, f"model.init_from={source}"]
    before = torch.load(starting_checkpoint(source), map_location="cpu", weights_only=True)["state_dict"]
    train(make_cfg(tmp_path / "lora", *args, "finetune.lora.r=2", "trainer.max_steps=6"))
    run = tmp_path / "lora" / "outputs" / "run"
    after = trained_state(run)
    adapters = [k for k in after if "lora_" in k]
    assert adapters and any(k.endswith("lora_B.default.weight") and after[k].abs().sum() > 0 for k in adapters)
    for name, value in after.items():
        if "lora_" in name or name.startswith("discriminator."):  # the GAN's discriminator trains in full
            continue
        assert torch.equal(value, before[_base_name(name)]), f"{name} changed"

    # a run that holds adapters is started from once they are merged
    with pytest.raises(GenkitError, match="merge=true"):
        build_model(make_cfg(tmp_path / "again", *[a for a in args if "init_from" not in a], f"model.init_from={run}"))

    # merged: plain parameter names, and the adapted model's outputs
    out = cli_in_process("export", f"ckpt={run}", "which=last", f"out={tmp_path / 'merged.ckpt'}", "merge=true",
                         f"data_root={tiny_data_root}", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    adapted, datamodule, _ = load_model(run / "checkpoints" / "last.ckpt", data_root=str(tiny_data_root))
    merged, _, merged_cfg = load_model(tmp_path / "merged.ckpt", data_root=str(tiny_data_root))
    assert not any("lora_" in k or "base_layer" in k for k in merged.state_dict())
    assert set(merged.state_dict()) == set(before) and merged_cfg.finetune.lora.r == 0
    if family == "gpt":
        datamodule.setup("test")
        x, _ = next(iter(datamodule.test_dataloader()))
        torch.testing.assert_close(merged(x), adapted(x), rtol=1e-4, atol=1e-5)
    else:
        g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
        # a diffusion sample chains its denoising steps, each adding the merge's rounding: 1e-3 on [-1, 1]
        # images is still far below one grey level (2/255), and a wrong merge moves pixels by tenths
        torch.testing.assert_close(merged.sample(4, generator=g()), adapted.sample(4, generator=g()), atol=1e-3,
                                   rtol=1e-4)  # fmt: skip
    sampled = cli_in_process("sample", f"ckpt={tmp_path / 'merged.ckpt'}", "n=2", f"out={tmp_path / 's'}",
                             f"data_root={tiny_data_root}", *(["max_new_tokens=4"] if family == "gpt" else []),
                             cwd=tmp_path)  # fmt: skip
    assert sampled.returncode == 0, sampled.stderr[-2000:]


def test_a_short_lora_run_ends_with_a_best_checkpoint(tmp_path, gpt_source):
    """20 LoRA steps, no validation scheduled before the end (one an epoch of ~140 batches): the
    final validation, inside fit, makes best.ckpt, which sample and eval use by default."""
    fix = ("data.lowercase=true", "data.unknown_chars=drop", "trainer.val_check_interval=null")
    args = finetune_args(tmp_path / "ft", gpt_source, *fix, "finetune.lora.r=4", "trainer.max_steps=20")
    metrics = train(make_cfg(tmp_path / "ft", *args))
    checkpoints = tmp_path / "ft" / "outputs" / "run" / "checkpoints"
    best = torch.load(checkpoints / "best.ckpt", map_location="cpu", weights_only=True)
    assert best["global_step"] == 20
    (state,) = [v for k, v in best["callbacks"].items() if k.startswith("BestCheckpoint")]
    assert float(state["best_model_score"]) == pytest.approx(metrics["val/loss"], rel=1e-6)


@pytest.mark.slow
def test_eval_scores_the_starting_model_beside_the_finetuned_one_once(tmp_path, gpt_source):
    run = tmp_path / "ft" / "outputs" / "run"
    fix = ("data.lowercase=true", "data.unknown_chars=drop")
    train(make_cfg(tmp_path / "ft", *finetune_args(tmp_path / "ft", gpt_source, *fix, "trainer.max_steps=20")))
    out = cli_in_process("eval", f"ckpt={run}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads((run / "eval.json").read_text())
    before = report["before"]
    assert before["init_from"] == str(gpt_source)
    assert report["test/loss"] < before["test/loss"]  # 20 steps on the new text lower its loss
    assert "before" in out.stdout and "after" in out.stdout
    # the starting model is scored once: a second eval reads it from eval.json
    before["test/loss"] = 123.0
    (run / "eval.json").write_text(json.dumps(report))
    again = cli_in_process("eval", f"ckpt={run}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((run / "eval.json").read_text())["before"]["test/loss"] == 123.0


def test_a_recipe_that_needs_its_starting_run_says_so(tmp_path):
    out = cli_in_process("train", "experiment=gpt_finetune_cpu", cwd=tmp_path)
    message = " ".join(out.stderr.split())
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert "model.init_from has no value" in message
    assert "pass model.init_from=<the directory of a gpt_pretrain_ptb_char_cpu run>" in message
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("*.ckpt"))
