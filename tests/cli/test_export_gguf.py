"""`genkit export format=gguf`: the file read back by the gguf package's own reader (llama.cpp's
Python side): the architecture and sizes llama.cpp loads by, every tensor under llama.cpp's name
holding the run's weights, and a tokenizer whose BOS is genkit's start token. Running it in
llama.cpp itself: scripts/check_gguf_llama_cpp.py (docs/use-elsewhere.md has its figures)."""

import json

import numpy as np
import pytest

from genkit.training.restore import load_model
from tests.helpers import cli_in_process

gguf = pytest.importorskip("gguf")


def read(folder):
    reader = gguf.GGUFReader(folder / "model.gguf")
    fields = {name: field.contents() for name, field in reader.fields.items()}
    # GGUF lists a tensor's dimensions innermost first: (out, in) weights read back as [in, out]
    tensors = {t.name: np.asarray(t.data).reshape(list(reversed([int(d) for d in t.shape]))) for t in reader.tensors}
    return fields, tensors


def export(tmp_path, ckpt, *options):
    out = cli_in_process("export", f"ckpt={ckpt}", "format=gguf", f"out={tmp_path / 'gguf'}", *options, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    return tmp_path / "gguf"


def test_genkits_gpt_as_gguf_holds_its_weights_and_tokenizer(tmp_path, tiny_gpt_checkpoint):
    fields, tensors = read(export(tmp_path, tiny_gpt_checkpoint))
    model, datamodule, _ = load_model(tiny_gpt_checkpoint)
    net, tokenizer = model.net, datamodule.tokenizer
    assert fields["general.architecture"] == "gpt2"
    assert fields["gpt2.context_length"] == net.block_size and fields["gpt2.block_count"] == net.n_layer
    assert fields["gpt2.embedding_length"] == net.n_embd and fields["gpt2.attention.head_count"] == net.n_head
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    assert np.array_equal(tensors["token_embd.weight"], state["wte.weight"])
    assert np.array_equal(tensors["output.weight"], state["wte.weight"])  # tied
    assert np.array_equal(tensors["position_embd.weight"], state["wpe.weight"])
    assert np.array_equal(tensors["blk.0.attn_qkv.weight"], state["blocks.0.attn.qkv.weight"])
    assert np.array_equal(tensors["blk.0.ffn_down.bias"], state["blocks.0.mlp.proj.bias"])
    assert len([n for n in tensors if n.startswith("blk.0.")]) == 12
    # the byte-level BPE as llama.cpp's gpt2 tokenizer: every token at genkit's id, its merges
    spec = json.loads(tokenizer.tokenizer.to_str())
    tokens = fields["tokenizer.ggml.tokens"]
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "gpt-2"
    assert len(tokens) == net.vocab_size and all(tokens[i] == t for t, i in spec["model"]["vocab"].items())
    assert len(fields["tokenizer.ggml.merges"]) == len(spec["model"]["merges"])
    # llama.cpp puts genkit's start token before every prompt, as genkit sample does
    assert fields["tokenizer.ggml.bos_token_id"] == tokenizer.eot_id and fields["tokenizer.ggml.add_bos_token"]


@pytest.mark.slow
def test_a_llama_run_as_gguf_in_llama_cpps_rotary_layout(tmp_path):
    from genkit.commands.train import train
    from tests.helpers import hf_text_run, make_cfg, write_tiny_hf_model

    folder = write_tiny_hf_model(tmp_path / "tiny-llama", "llama")
    train(make_cfg(tmp_path, *hf_text_run(tmp_path, folder)))
    run = tmp_path / "outputs" / "run"
    fields, tensors = read(export(tmp_path, run, "which=last"))
    model, datamodule, _ = load_model(run / "checkpoints" / "last.ckpt")
    config = model.net.model.config
    assert fields["general.architecture"] == "llama" and fields["llama.block_count"] == config.num_hidden_layers
    assert fields["llama.attention.head_count_kv"] == config.num_key_value_heads
    assert fields["llama.rope.dimension_count"] == config.hidden_size // config.num_attention_heads
    state = {k: v.numpy() for k, v in model.net.model.state_dict().items()}
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads

    def unpermute(w, n):  # llama.cpp's pairs back to Hugging Face's halves
        return w.reshape(n, w.shape[0] // n // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    q, k = state["model.layers.0.self_attn.q_proj.weight"], state["model.layers.0.self_attn.k_proj.weight"]
    assert np.array_equal(unpermute(tensors["blk.0.attn_q.weight"], heads), q)
    assert np.array_equal(unpermute(tensors["blk.0.attn_k.weight"], kv_heads), k)
    assert not np.array_equal(tensors["blk.0.attn_q.weight"], q)  # permuted, not copied
    assert np.array_equal(tensors["blk.1.ffn_gate.weight"], state["model.layers.1.mlp.gate_proj.weight"])
    assert np.array_equal(tensors["output_norm.weight"], state["model.norm.weight"])
    assert fields["tokenizer.ggml.bos_token_id"] == datamodule.tokenizer.eot_id


def test_the_lstm_and_image_models_have_no_gguf_and_say_which_formats_they_have(tmp_path, tiny_gan_checkpoint):
    from genkit.formats.base import Exported, FormatUnsupported
    from genkit.formats.gguf import write_gguf
    from genkit.training.build import build_model
    from tests.helpers import make_cfg

    cfg = make_cfg(tmp_path, "model=lm", "data=ptb", "model/lm_net@model.net=lstm", "model.net.n_embd=16")
    run = Exported(build_model(cfg, report=False), None, cfg, {}, tmp_path / "last.ckpt", 0)
    refusal = "model is a LSTMLanguageModel; export it as format=safetensors or format=ckpt"
    with pytest.raises(FormatUnsupported, match=refusal):
        write_gguf(run, tmp_path / "gguf")
    out = cli_in_process("export", f"ckpt={tiny_gan_checkpoint}", "format=gguf", f"out={tmp_path / 'g'}", cwd=tmp_path)
    message = " ".join(out.stderr.split())
    assert out.returncode == 2 and "Traceback" not in out.stderr and "format=gguf holds" in message, message
    assert not (tmp_path / "gguf").exists() and not (tmp_path / "g").exists()


def test_a_word_vocabulary_is_refused_in_one_paragraph():
    from genkit.data.tokenizers import WordTokenizer
    from genkit.formats.base import FormatUnsupported
    from genkit.formats.gguf import _vocabulary

    with pytest.raises(FormatUnsupported, match="WordTokenizer has no GGUF form"):
        _vocabulary(WordTokenizer(["<eos>", "a", "b"]), 3)
