"""format=gguf, for text models: a folder holding model.gguf, the file llama.cpp, Ollama and LM
Studio run, written by the `gguf` package (llama.cpp's own writer).

genkit's transformer is GPT-2's layout and becomes llama.cpp's `gpt2` architecture; a Hugging
Face run of the Llama family (model_type llama) becomes `llama`, its query and key rows permuted
to llama.cpp's rotary layout as llama.cpp's convert_hf_to_gguf.py does. Weights stay fp32.
llama.cpp computes GPT-2's tanh GELU; a run trained with `model.net.gelu=none` (the exact GELU)
exports too, and its logits there differ in the third decimal.

The tokenizer goes in as a GPT-2 style byte-level BPE (`tokenizer.ggml.model=gpt2`): genkit's BPE
and byte-level Hugging Face tokenizers with their merges, a character vocabulary of ASCII as
single-byte tokens with no merges. Every prompt starts with genkit's end-of-text token, so it is
the file's BOS token and add_bos_token is on: llama.cpp then reads a prompt as `genkit sample`
does. Word vocabularies, and tokenizers llama.cpp would split differently, are refused. No chat
template goes in (llama.cpp adds the BOS token itself, and genkit's exported template writes it
too); chat clients use format=hf or `genkit serve`.
"""

import json
from pathlib import Path

import numpy as np
import torch

from genkit.data.tokenizers import BPETokenizer, CharTokenizer
from genkit.formats.base import Exported, FormatUnsupported, write_folder
from genkit.models.nets.hf_causal_lm import HFCausalLM
from genkit.models.nets.transformer import Transformer

FILE = "model.gguf"
# the pre-tokenizer regex of Llama 3's tokenizer.json, which llama.cpp calls "llama-bpe" (GPT-2's is "gpt-2")
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)


def write_gguf(run: Exported, out: Path) -> Path:
    import gguf

    net = getattr(run.model, "net", None) if run.model.modality == "text" else None
    if getattr(run.model, "label_head", None) is not None:
        raise FormatUnsupported(
            "This run answers with a label head (model.head=labels), which GGUF's language-model architectures do "
            "not hold; export it as format=hf (a sequence classifier) or format=safetensors."
        )
    if isinstance(net, Transformer):
        arch, tensors = "gpt2", _gpt2_tensors(net)
    elif isinstance(net, HFCausalLM) and net.model_type == "llama":
        arch, tensors = "llama", _llama_tensors(net)
    else:
        what = type(net).__name__ if net is not None else f"{type(run.model).__name__} of {run.model.modality}"
        others = "format=safetensors or format=ckpt"
        if isinstance(net, HFCausalLM):
            what, others = f"Hugging Face {net.model_type} network", "format=hf (llama.cpp's converter reads it)"
        raise FormatUnsupported(
            f"format=gguf holds genkit's transformer (as llama.cpp's gpt2) and Llama-family Hugging Face runs, and "
            f"this run's model is a {what}; export it as {others}."
        )
    tokens, merges, pre = _vocabulary(run.datamodule.tokenizer, net.vocab_size)

    def fill(folder: Path) -> None:
        writer = gguf.GGUFWriter(folder / FILE, arch)
        writer.add_name(str(run.config.get("run_name") or "genkit"))
        writer.add_file_type(gguf.LlamaFileType.ALL_F32)
        _hyperparameters(writer, net, arch)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(pre)
        writer.add_token_list(tokens)
        writer.add_token_types([gguf.TokenType.NORMAL] * len(tokens))
        writer.add_token_merges(merges)
        eot = run.datamodule.tokenizer.eot_id
        writer.add_bos_token_id(eot)  # genkit starts every prompt with it
        writer.add_eos_token_id(eot)
        writer.add_add_bos_token(True)
        writer.add_add_eos_token(False)
        record = {"exported_from": str(run.source), "step": run.checkpoint.get("global_step")}
        writer.add_string("genkit.run", json.dumps(record))
        for name, array in tensors:
            writer.add_tensor(name, array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()

    return write_folder(out, fill)


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float32).cpu().contiguous().numpy()


def _gpt2_tensors(net: Transformer) -> list[tuple[str, np.ndarray]]:
    """genkit's transformer under llama.cpp's gpt2 tensor names (its Linear weights are already
    (out, in), as GGUF stores them); a network without biases gets zero ones, which llama.cpp's
    gpt2 requires."""
    state = net.state_dict()

    def get(key: str, like: str) -> np.ndarray:
        return _numpy(state[key]) if key in state else np.zeros(state[like].shape[0], dtype=np.float32)

    out = [("token_embd.weight", _numpy(state["wte.weight"])), ("position_embd.weight", _numpy(state["wpe.weight"]))]
    pieces = {"ln_1": "attn_norm", "attn.qkv": "attn_qkv", "attn.proj": "attn_output", "ln_2": "ffn_norm",
              "mlp.fc": "ffn_up", "mlp.proj": "ffn_down"}  # fmt: skip
    for i in range(net.n_layer):
        for ours, theirs in pieces.items():
            weight = f"blocks.{i}.{ours}.weight"
            out.append((f"blk.{i}.{theirs}.weight", _numpy(state[weight])))
            out.append((f"blk.{i}.{theirs}.bias", get(f"blocks.{i}.{ours}.bias", weight)))
    out.append(("output_norm.weight", _numpy(state["ln_f.weight"])))
    out.append(("output_norm.bias", get("ln_f.bias", "ln_f.weight")))
    out.append(("output.weight", _numpy(state["wte.weight"])))  # tied: llama.cpp reads its own copy
    return out


def _permute(w: np.ndarray, heads: int) -> np.ndarray:
    """Hugging Face's rotary layout (halves) to llama.cpp's (pairs), as convert_hf_to_gguf.py does."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _llama_tensors(net: HFCausalLM) -> list[tuple[str, np.ndarray]]:
    import gguf

    config = net.model.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads or config.num_attention_heads
    out = []
    state = net.model.state_dict()
    if "lm_head.weight" not in state:  # tied and not saved twice
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    for key, value in state.items():
        if key.endswith("rotary_emb.inv_freq"):
            continue
        array = _numpy(value)
        if key.endswith("q_proj.weight"):
            array = _permute(array, heads)
        elif key.endswith("k_proj.weight"):
            array = _permute(array, kv_heads)
        name = names.get_name(key, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise FormatUnsupported(f"The Llama network's tensor {key} has no GGUF name; export it as format=hf.")
        out.append((name, array))
    return out


def _hyperparameters(writer, net, arch: str) -> None:
    if arch == "gpt2":
        writer.add_context_length(net.block_size)
        writer.add_embedding_length(net.n_embd)
        writer.add_feed_forward_length(4 * net.n_embd)
        writer.add_block_count(net.n_layer)
        writer.add_head_count(net.n_head)
        writer.add_layer_norm_eps(net.blocks[0].ln_1.eps)
        return
    c = net.model.config
    writer.add_vocab_size(net.vocab_size)
    writer.add_context_length(c.max_position_embeddings)
    writer.add_embedding_length(c.hidden_size)
    writer.add_feed_forward_length(c.intermediate_size)
    writer.add_block_count(c.num_hidden_layers)
    writer.add_head_count(c.num_attention_heads)
    writer.add_head_count_kv(c.num_key_value_heads or c.num_attention_heads)
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    writer.add_rope_dimension_count(head_dim)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_layer_norm_rms_eps(c.rms_norm_eps)
    theta = getattr(c, "rope_theta", None) or (getattr(c, "rope_parameters", None) or {}).get("rope_theta", 10000.0)
    writer.add_rope_freq_base(float(theta))


def _vocabulary(tokenizer, vocab_size: int) -> tuple[list[str], list[str], str]:
    """(tokens in id order, merges, llama.cpp's pre-tokenizer name) of a GPT-2 style byte-level BPE."""
    from gguf.vocab import bytes_to_unicode

    if isinstance(tokenizer, CharTokenizer):
        as_byte = bytes_to_unicode()
        if any(len(c) != 1 or ord(c) > 127 for c in tokenizer.itos):
            raise FormatUnsupported(
                "The run's characters are not all ASCII, and llama.cpp reads a character vocabulary only as one byte "
                "a token; export it as format=safetensors or format=hf."
            )
        tokens = [as_byte[ord(c)] for c in tokenizer.itos]
        # llama.cpp needs a merge list; one of byte 0xFF with itself never applies to ASCII text
        never = f"{as_byte[0xFF]} {as_byte[0xFF]}"
        return _padded(tokens, vocab_size), [never], "gpt-2"
    if isinstance(tokenizer, BPETokenizer):
        spec = json.loads(tokenizer.tokenizer.to_str())
        model, pre = spec.get("model") or {}, spec.get("pre_tokenizer") or {}
        name = _pre_tokenizer(pre)
        if model.get("type") != "BPE" or name is None:
            raise FormatUnsupported(
                "The run's tokenizer is not a byte-level BPE that llama.cpp splits as Hugging Face does (GPT-2's or "
                "Llama 3's pre-tokenizer), so its GGUF file would tokenize differently; export it as format=hf."
            )
        vocab = dict(model["vocab"])
        for added in spec.get("added_tokens") or []:
            vocab[added["content"]] = added["id"]
        tokens = [None] * (max(vocab.values()) + 1)
        for token, i in vocab.items():
            tokens[i] = token
        tokens = [t if t is not None else f"[PAD{i}]" for i, t in enumerate(tokens)]
        merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
        return _padded(tokens, vocab_size), merges, name
    raise FormatUnsupported(
        f"The run's {type(tokenizer).__name__} has no GGUF form (llama.cpp reads byte-level BPE vocabularies); "
        f"export it as format=safetensors or format=ckpt."
    )


def _pre_tokenizer(pre: dict) -> str | None:
    """llama.cpp's name for a tokenizer.json pre-tokenizer it splits the same way, else None."""
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "gpt-2"
    steps = pre.get("pretokenizers") if pre.get("type") == "Sequence" else None
    if steps and len(steps) == 2 and steps[1].get("type") == "ByteLevel" and not steps[1].get("use_regex", True):
        pattern = (steps[0].get("pattern") or {}).get("Regex")
        if steps[0].get("type") == "Split" and pattern == LLAMA3_SPLIT:
            return "llama-bpe"
    return None


def _padded(tokens: list[str], vocab_size: int) -> list[str]:
    """The network's rows beyond the tokenizer's tokens (a vocabulary rounded up) as unused tokens."""
    return tokens + [f"[PAD{i}]" for i in range(len(tokens), vocab_size)]
