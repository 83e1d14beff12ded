"""`genkit export format=...`: each format opened by the library that owns it, not by genkit's own
reader (transformers for format=hf), and format=safetensors by `genkit sample` / `genkit eval`
with no pickle read at any point."""

import json

import pytest
import torch

from genkit.training.restore import load_model
from tests.helpers import cli_in_process

transformers = pytest.importorskip("transformers")


def export(tmp_path, ckpt, *options):
    out = cli_in_process("export", f"ckpt={ckpt}", *options, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_genkits_gpt_as_hf_opens_in_transformers_with_the_same_logits_and_tokens(tmp_path, tiny_gpt_checkpoint):
    from genkit.data.chat import render_chat

    export(tmp_path, tiny_gpt_checkpoint, "format=hf", f"out={tmp_path / 'hf'}")
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in (tmp_path / "hf").iterdir()}
    model, datamodule, _ = load_model(tiny_gpt_checkpoint)
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert hf.config.model_type == "gpt2"
    # genkit's prompt is its boundary token then the prompt's ids: the exported tokenizer gives both
    ids = datamodule.prompt_ids("line 3 of a")
    assert tokenizer("line 3 of a").input_ids == ids
    x = torch.tensor([ids])
    with torch.no_grad():
        torch.testing.assert_close(hf(x).logits, model(x), atol=1e-4, rtol=0)
    greedy = model.sample(1, prompt_ids=ids, max_new_tokens=10, temperature=0)  # within block_size=16
    # all of the prompt attended to (the boundary token is no padding), and no stop at it
    theirs = hf.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=10, do_sample=False, eos_token_id=None)
    assert theirs.tolist() == greedy.tolist()
    # the chat template the run answers chats with, in tokenizer_config.json: genkit's prompt ids
    chat = [{"role": "user", "content": "line 3"}]
    assert "chat_template" in json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text())
    ours = datamodule.prompt_ids(render_chat(datamodule.chat_template(), chat, datamodule.tokenizer.boundary))
    assert tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=False) == ours
    # the folder as a user opens it, nothing added by hand: genkit's greedy text
    pipe = transformers.pipeline("text-generation", model=str(tmp_path / "hf"))
    text = pipe("line 3 of a", max_new_tokens=10, do_sample=False, eos_token_id=None)[0]["generated_text"]
    assert text == datamodule.decode_batch(greedy)[0]


def test_char_and_word_vocabularies_become_tokenizer_json(tmp_path):
    from genkit.data.tokenizers import CharTokenizer, WordTokenizer
    from genkit.formats.tokenizer_json import save_tokenizer_files

    text = "the cat sat\non the mat\n"
    for tokenizer in (CharTokenizer.fit(text), WordTokenizer.fit(text)):
        folder = tmp_path / tokenizer.kind
        folder.mkdir()
        save_tokenizer_files(tokenizer, folder, 64)
        theirs = transformers.AutoTokenizer.from_pretrained(folder)
        ids = tokenizer.encode("the mat\nsat on")
        # genkit ends every line of words with <eos>, the last one too; the text has no last newline;
        # a text starts with the boundary token, as genkit's prompts do
        ours = ids[:-1] if tokenizer.kind == "word" else ids
        assert theirs("the mat\nsat on").input_ids == [tokenizer.eot_id, *ours]
    assert theirs.decode(WordTokenizer.fit(text).encode_prompt("the cat")) == "the cat"


def _no_pickle(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("torch.load was called: a pickle was opened")

    monkeypatch.setattr(torch, "load", refuse)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gpt", "gan"])
def test_safetensors_export_samples_and_evaluates_without_pickle(tmp_path, request, monkeypatch, family):
    ckpt = request.getfixturevalue(f"tiny_{family}_checkpoint")
    data_root = ckpt.parents[3] / "data"
    export(tmp_path, ckpt, "format=safetensors", f"out={tmp_path / 'st'}")
    folder = tmp_path / "st"
    assert json.loads((folder / "genkit.json").read_text())["genkit"]["config"]["model"]["_target_"].startswith(
        "genkit.models."
    )
    text = ["max_new_tokens=6", "temperature=0"] if family == "gpt" else []
    args = ["n=2", f"data_root={data_root}", *text]
    if family == "gpt":  # what the checkpoint itself gives, to compare with
        reference = cli_in_process("sample", f"ckpt={ckpt}", *args, f"out={tmp_path / 'a'}", cwd=tmp_path)
        assert reference.returncode == 0, reference.stderr[-3000:]
    _no_pickle(monkeypatch)
    sampled = cli_in_process("sample", f"ckpt={folder}", *args, f"out={tmp_path / 'b'}", cwd=tmp_path)
    assert sampled.returncode == 0, sampled.stderr[-3000:]
    if family == "gpt":
        assert (tmp_path / "b.txt").read_text() == (tmp_path / "a.txt").read_text()
        scored = cli_in_process("eval", f"ckpt={folder}", f"out={tmp_path / 'eval.json'}", cwd=tmp_path)
        assert scored.returncode == 0, scored.stderr[-3000:]
        assert json.loads((tmp_path / "eval.json").read_text())["test/ppl"] > 1


def test_overwrite_replaces_an_existing_export(tmp_path, tiny_gan_checkpoint):
    # (a folder that an export did not write is never replaced: tests/cli/test_export_guards.py)
    out = tmp_path / "st"
    export(tmp_path, tiny_gan_checkpoint, "format=safetensors", f"out={out}")
    (out / "model.safetensors").write_bytes(b"")
    refused = cli_in_process("export", f"ckpt={tiny_gan_checkpoint}", "format=safetensors", f"out={out}", cwd=tmp_path)
    assert refused.returncode == 2 and (out / "model.safetensors").read_bytes() == b""
    export(tmp_path, tiny_gan_checkpoint, "format=safetensors", f"out={out}", "overwrite=true")
    assert (out / "model.safetensors").stat().st_size > 0
    (tmp_path / "new.txt").write_text("")  # the export's files have the permissions of any new file
    assert (out / "model.safetensors").stat().st_mode == (tmp_path / "new.txt").stat().st_mode
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


@pytest.mark.slow
def test_a_tiny_llama_trains_with_lora_samples_evaluates_and_exports_to_transformers(tmp_path):
    """The issue's bar: a Llama-architecture model fine-tuned with LoRA through genkit, exported
    with format=hf, generates in transformers the greedy tokens that `genkit sample` gives."""
    from genkit.commands.train import train
    from tests.helpers import hf_text_run, make_cfg, write_tiny_hf_model

    folder = write_tiny_hf_model(tmp_path / "tiny-llama", "llama")
    train(make_cfg(tmp_path, *hf_text_run(tmp_path, folder), "finetune.lora.r=4"))
    run = tmp_path / "outputs" / "run"
    prompt = "sentence number 7"
    sampled = cli_in_process("sample", f"ckpt={run}", "which=last", "n=1", "temperature=0", "max_new_tokens=8",
                             f"prompt={prompt}", f"out={tmp_path / 'sample'}", cwd=tmp_path)  # fmt: skip
    assert sampled.returncode == 0, sampled.stderr[-3000:]
    scored = cli_in_process("eval", f"ckpt={run}", "which=last", f"out={tmp_path / 'eval.json'}", cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr[-3000:]
    assert json.loads((tmp_path / "eval.json").read_text())["test/ppl"] > 1

    export(tmp_path, run, "which=last", "format=hf", f"out={tmp_path / 'hf'}")
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert hf.config.model_type == "llama" and not any("lora" in k for k in hf.state_dict())
    # genkit starts generation from its boundary token, then the prompt: the exported tokenizer too
    x = torch.tensor([tokenizer(prompt).input_ids])
    assert x[0, 0] == tokenizer.convert_tokens_to_ids("<|endoftext|>")
    tokens = hf.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=8, do_sample=False, eos_token_id=None)
    theirs = tokenizer.decode(tokens[0, 1:].tolist())
    with open(tmp_path / "sample.txt", newline="") as f:  # as written: a random model may emit a \r
        assert f.read() == f"--- sample 0 ---\n{theirs}\n"


def test_the_lstm_has_no_hf_format_and_says_which_it_has(tmp_path):
    from genkit.formats.base import Exported, FormatUnsupported
    from genkit.formats.hf import write_hf
    from genkit.training.build import build_model
    from tests.helpers import make_cfg

    cfg = make_cfg(tmp_path, "model=lm", "data=ptb", "model/lm_net@model.net=lstm", "model.net.n_embd=16")
    run = Exported(build_model(cfg, report=False), None, cfg, {}, tmp_path / "last.ckpt", 0)
    with pytest.raises(FormatUnsupported) as info:
        write_hf(run, tmp_path / "hf")
    message = str(info.value)
    assert "LSTMLanguageModel network has no transformers class" in message and "format=safetensors" in message
    assert "\n" not in message and not (tmp_path / "hf").exists()


def test_a_safetensors_export_starts_a_new_run(tmp_path, tiny_gpt_checkpoint):
    """model.init_from=<export folder>: a run handed on without pickles is fine-tuned from."""
    from genkit.training.build import build_model
    from tests.helpers import make_cfg, tiny_text_run

    export(tmp_path, tiny_gpt_checkpoint, "format=safetensors", f"out={tmp_path / 'st'}")
    cfg = make_cfg(tmp_path, *tiny_text_run(tmp_path), f"model.init_from={tmp_path / 'st'}")
    started, (original, _, _) = build_model(cfg, report=False), load_model(tiny_gpt_checkpoint)
    for name, value in original.state_dict().items():
        assert torch.equal(started.state_dict()[name], value), name


@pytest.mark.slow
def test_a_label_head_exports_as_a_sequence_classifier_with_genkits_predictions(tmp_path):
    """model.head=labels, exported with format=hf: `pipeline("text-classification")` on the plain
    prompts (the folder as a user opens it, nothing added by hand) gives the labels and
    probabilities that `genkit sample inputs=` gives, for genkit's transformer and a Llama."""
    from tests.helpers import write_tiny_hf_model
    from tests.pairs_helpers import tiny_pairs_run

    run = [*tiny_pairs_run(tmp_path, "labels"), "model.head=labels", 'data.separator=" =>"', "trainer.max_steps=6"]
    llama = write_tiny_hf_model(tmp_path / "tiny-llama", "llama")
    networks = {
        "gpt2": run,
        "llama": [*[o for o in run if not o.startswith(("model.net.", "data.vocab_size"))],
                  "model/lm_net@model.net=hf", f"model.init_from={llama}"],
    }  # fmt: skip
    prompts = ["item 1 starts re", "item 2 starts bl", "item 5 starts gr", "item 9 starts re"]
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    for name, overrides in networks.items():
        trained = cli_in_process("train", *overrides, f"hydra.run.dir={tmp_path / name}", cwd=tmp_path)
        assert trained.returncode == 0, trained.stderr[-3000:]
        preds = tmp_path / f"{name}.jsonl"
        sampled = cli_in_process("sample", f"ckpt={tmp_path / name}", f"inputs={tmp_path / 'prompts.jsonl'}",
                                 f"out={preds}", cwd=tmp_path)  # fmt: skip
        assert sampled.returncode == 0, sampled.stderr[-3000:]
        export(tmp_path, tmp_path / name, "format=hf", f"out={tmp_path / (name + '_hf')}")
        classify = transformers.pipeline("text-classification", model=str(tmp_path / (name + "_hf")), top_k=None)
        assert classify.model.config.model_type == name and classify.model.num_labels == 3
        theirs = classify(prompts)
        for row, answer in zip((json.loads(line) for line in preds.read_text().splitlines()), theirs, strict=True):
            scores = {a["label"]: a["score"] for a in answer}
            assert max(scores, key=scores.get) == row["prediction"], (name, answer, row)
            assert scores == pytest.approx(row["probabilities"], abs=1e-4), name
