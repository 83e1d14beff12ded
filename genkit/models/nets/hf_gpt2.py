"""Loading Hugging Face GPT-2 checkpoints into genkit's Transformer (no second model class).

HF's GPT-2 stores its linear layers as Conv1D with (in, out) weights; genkit's nn.Linear
holds (out, in), so those matrices are transposed on the way in.
"""

import logging
from pathlib import Path

import torch

from genkit.checkpoints.hub import GPT2_SIZES, pretrained_config, pretrained_dir
from genkit.errors import GenkitError
from genkit.models.nets.transformer import Transformer

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


def gpt2_config(name_or_path: str) -> dict:
    config = pretrained_config(name_or_path)
    if config.get("model_type") != "gpt2":
        raise GenkitError(f"{name_or_path} holds a {config.get('model_type')!r} model; genkit loads GPT-2 checkpoints.")
    if config.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
        raise GenkitError(f"{name_or_path}: activation {config['activation_function']!r} is not GPT-2's tanh GELU.")
    return config


def _read_state(folder: Path) -> dict[str, torch.Tensor]:
    if (folder / "model.safetensors").is_file():
        from safetensors.torch import load_file

        return load_file(folder / "model.safetensors")
    if (folder / "pytorch_model.bin").is_file():
        return torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise GenkitError(f"{folder} has neither model.safetensors nor pytorch_model.bin.")


def load_gpt2_weights(net: Transformer, name_or_path: str) -> None:
    """Copy a GPT-2 checkpoint into net, whose sizes must match the checkpoint's config."""
    if not isinstance(net, Transformer):
        raise GenkitError(
            f"model.init_from={name_or_path} names Hugging Face GPT-2 weights, which load only into genkit's "
            f"transformer, not into {type(net).__name__}. Pick model/lm_net@model.net=gpt2, or drop "
            f"model.init_from to train this network from scratch (or start from a genkit run of it)."
        )
    config = gpt2_config(name_or_path)
    folder = pretrained_dir(name_or_path)
    expected = {k: config[hf_key] for k, hf_key in GPT2_SIZES.items()}
    wrong = [k for k in expected if getattr(net, k) != expected[k] and k != "block_size"]
    if wrong or net.block_size > expected["block_size"]:
        raise GenkitError(
            f"The network does not have the shape of {name_or_path}: it needs "
            f"{', '.join(f'{k}={expected[k]}' for k in expected)} (block_size at most {expected['block_size']})."
        )
    hf = {k.removeprefix("transformer."): v for k, v in _read_state(folder).items()}
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
    log.info("Loaded GPT-2 weights from %s", folder)
