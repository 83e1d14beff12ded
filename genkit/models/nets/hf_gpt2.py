"""Hugging Face GPT-2 checkpoints in and out of genkit's Transformer (no second model class).

HF's GPT-2 stores its linear layers as Conv1D with (in, out) weights; genkit's nn.Linear
holds (out, in), so those matrices are transposed on the way in and on the way out. One table
(_BLOCK_NAMES) names each block's parts both ways.
"""

import logging

import torch
from safetensors.torch import load_file
from torch import nn

from genkit.checkpoints.hub import GPT2_SIZES, pretrained_config, safetensors_files
from genkit.errors import GenkitError

log = logging.getLogger(__name__)

_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# HF name inside a block -> genkit name inside a block
_BLOCK_NAMES = {
    "ln_1": "ln_1",
    "ln_2": "ln_2",
    "attn.c_attn": "attn.qkv",
    "attn.c_proj": "attn.proj",
    "mlp.c_fc": "mlp.fc",
    "mlp.c_proj": "mlp.proj",
}
# genkit's model.net.gelu -> GPT-2's activation_function: the tanh approximation is GPT-2's own
# ("gelu_new"); the exact GELU is transformers' "gelu"
GELU_NAMES = {"tanh": "gelu_new", "none": "gelu"}


def gpt2_config(name_or_path: str) -> dict:
    config = pretrained_config(name_or_path)
    if config.get("model_type") != "gpt2":
        raise GenkitError(
            f"{name_or_path} holds a {config.get('model_type')!r} model, and genkit's own transformer loads GPT-2 "
            f"checkpoints only; build the network with transformers instead: model/lm_net@model.net=hf."
        )
    if config.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
        raise GenkitError(f"{name_or_path}: activation {config['activation_function']!r} is not GPT-2's tanh GELU.")
    return config


def _read_state(name_or_path: str) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for path in safetensors_files(name_or_path):  # safetensors only: no pickle is ever opened
        state.update(load_file(path))
    return state


def load_gpt2_weights(net: nn.Module, name_or_path: str) -> None:
    """Copy a GPT-2 checkpoint into genkit's Transformer `net`, whose sizes must match the
    checkpoint's config."""
    config = gpt2_config(name_or_path)
    expected = {k: config[hf_key] for k, hf_key in GPT2_SIZES.items()}
    wrong = [k for k in expected if getattr(net, k) != expected[k] and k != "block_size"]
    if wrong or net.block_size > expected["block_size"]:
        raise GenkitError(
            f"The network does not have the shape of {name_or_path}: it needs "
            f"{', '.join(f'{k}={expected[k]}' for k in expected)} (block_size at most {expected['block_size']})."
        )
    hf = {k.removeprefix("transformer."): v for k, v in _read_state(name_or_path).items()}
    # a shorter context keeps the first block_size learned positions
    state = {"wte.weight": hf["wte.weight"], "wpe.weight": hf["wpe.weight"][: net.block_size]}
    state["ln_f.weight"], state["ln_f.bias"] = hf["ln_f.weight"], hf["ln_f.bias"]
    for i in range(config["n_layer"]):
        for hf_name, name in _BLOCK_NAMES.items():
            for kind in ("weight", "bias"):
                tensor = hf[f"h.{i}.{hf_name}.{kind}"]
                if f"{hf_name}.{kind}" in _CONV1D:
                    tensor = tensor.t()
                state[f"blocks.{i}.{name}.{kind}"] = tensor
    state["lm_head.weight"] = state["wte.weight"]
    net.load_state_dict(state, strict=True)
    log.info("Loaded GPT-2 weights from %s", name_or_path)


def as_gpt2(net: nn.Module) -> tuple[dict, dict[str, torch.Tensor]]:
    """genkit's Transformer as a transformers GPT2LMHeadModel: its config.json and its state dict
    (HF names, Conv1D layout). Layers built without biases (model.net.bias=false) get zero biases,
    which compute the same; the output layer stays tied to the embedding, as in GPT-2."""
    attn = net.blocks[0].attn
    config = {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": net.vocab_size,
        "n_positions": net.block_size,
        "n_embd": net.n_embd,
        "n_layer": net.n_layer,
        "n_head": attn.n_head,
        "n_inner": net.blocks[0].mlp.fc.out_features,
        "activation_function": GELU_NAMES[net.blocks[0].mlp.gelu],
        "layer_norm_epsilon": net.ln_f.eps,
        "tie_word_embeddings": True,
        # dropout only acts in training; the export is for inference, as genkit's eval mode
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
    }
    own = {k: v.detach() for k, v in net.state_dict().items()}

    def with_bias(prefix: str, size: int) -> dict[str, torch.Tensor]:
        bias = own.get(f"{prefix}.bias")
        return {"bias": bias if bias is not None else torch.zeros(size, dtype=own[f"{prefix}.weight"].dtype)}

    state = {"transformer.wte.weight": own["wte.weight"], "transformer.wpe.weight": own["wpe.weight"]}
    state["transformer.ln_f.weight"] = own["ln_f.weight"]
    state["transformer.ln_f.bias"] = with_bias("ln_f", net.n_embd)["bias"]
    for i in range(net.n_layer):
        for hf_name, name in _BLOCK_NAMES.items():
            weight = own[f"blocks.{i}.{name}.weight"]
            if f"{hf_name}.weight" in _CONV1D:
                weight = weight.t()
            state[f"transformer.h.{i}.{hf_name}.weight"] = weight.contiguous()
            size = weight.shape[-1] if f"{hf_name}.weight" in _CONV1D else weight.shape[0]
            state[f"transformer.h.{i}.{hf_name}.bias"] = with_bias(f"blocks.{i}.{name}", size)["bias"]
    return config, state
