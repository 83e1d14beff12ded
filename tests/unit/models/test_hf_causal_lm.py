"""model/lm_net@model.net=hf: any causal LM that transformers builds, as the language-model family's network.

Tiny random Llama, Qwen2 and GPT-NeoX models are written to temporary folders as the hub serves
them (the hub path is the same code with a download in front); nothing is downloaded."""

import math

import pytest
import torch
import transformers

from genkit.commands.train import train
from genkit.training.build import build_model
from tests.helpers import hf_text_run, make_cfg, write_tiny_hf_model


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory):
    """{architecture: folder} of tiny random models, written once for this module."""
    root = tmp_path_factory.mktemp("hf")
    return {arch: write_tiny_hf_model(root / arch, arch) for arch in ("llama", "qwen2", "gpt_neox")}


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt_neox"])
def test_logits_and_greedy_tokens_equal_transformers(tmp_path, tiny_hf, arch):
    cfg = make_cfg(tmp_path, *hf_text_run(tmp_path, tiny_hf[arch]))
    assert cfg.model.net.config["model_type"] == arch and cfg.data.vocab_size == 320
    model = build_model(cfg).eval()
    reference = transformers.AutoModelForCausalLM.from_pretrained(tiny_hf[arch]).eval()
    idx = torch.randint(0, 320, (2, 24), generator=torch.Generator().manual_seed(0))
    prompt = [0, 17, 42, 99]
    with torch.no_grad():
        torch.testing.assert_close(model(idx), reference(idx).logits, atol=1e-5, rtol=0)
        expected = reference.generate(torch.tensor([prompt]), max_new_tokens=12, do_sample=False)
    for use_cache in (True, False):  # through transformers' KV cache, and recomputed each token
        tokens = model.sample(1, prompt_ids=prompt, max_new_tokens=12, temperature=0, use_cache=use_cache)
        assert tokens.tolist() == expected.tolist()
    # peft's per-architecture choice of LoRA layers
    assert model.lora_targets == {"gpt_neox": ("net.model.*.query_key_value",)}.get(
        arch, ("net.model.*.q_proj", "net.model.*.v_proj")
    )


@pytest.mark.slow
def test_trains_from_its_weights_with_lora_and_gradient_checkpointing(tmp_path, tiny_hf):
    run = [*hf_text_run(tmp_path, tiny_hf["qwen2"]), "finetune.lora.r=4", "model.net.gradient_checkpointing=true"]
    cfg = make_cfg(tmp_path, *run)
    metrics = train(cfg)
    assert math.isfinite(metrics["val/loss"]) and metrics["val/ppl"] > 1
    state = torch.load(tmp_path / "outputs" / "run" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    adapted = sorted({k.rsplit(".", 3)[0] for k in state if "lora_A" in k})
    assert adapted and all(name.endswith(("q_proj", "v_proj")) for name in adapted), adapted
    # the stored config rebuilds the network without the folder it came from
    stored = torch.load(tmp_path / "outputs" / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert stored["genkit"]["config"]["model"]["net"]["config"]["model_type"] == "qwen2"


def test_trains_from_scratch_from_an_architecture_alone(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a small corpus of words for a model that starts from nothing\n" * 80)
    architecture = (
        "{model_type:llama,hidden_size:32,num_hidden_layers:1,num_attention_heads:2,intermediate_size:64,"
        "max_position_embeddings:64}"
    )
    cfg = make_cfg(
        tmp_path, "model=lm", "model/lm_net@model.net=hf", f"model.net.architecture={architecture}",
        "data=text", f"data.path={corpus}", "data.vocab_size=300", "data.block_size=16", "data.batch_size=4",
        f"data.cache_dir={tmp_path / 'cache'}", "trainer.max_steps=2", "trainer.accelerator=cpu",
        "trainer.precision=32-true",
    )  # fmt: skip
    metrics = train(cfg)
    assert math.isfinite(metrics["val/loss"])
