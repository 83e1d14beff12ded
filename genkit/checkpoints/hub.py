"""Hugging Face checkpoints given as a hub id or a local folder: their config, weights (safetensors
only) and tokenizer files, for genkit's transformer (GPT-2 weights) and for any causal LM built by
transformers (model/lm_net@model.net=hf).

Loading is not executing: weights are read from safetensors only (a `.bin` is a pickle), and a
model whose config asks for code of its own (`auto_map`, trust_remote_code) is refused."""

import json
from functools import lru_cache
from pathlib import Path

from genkit.checkpoints.starting_weights import network_setting, starting_checkpoint
from genkit.errors import CheckpointError, GenkitError, first_line

# what genkit fetches from a hub repository: the config, safetensors weights (one file, or shards
# and their index) and the tokenizer; never *.bin pickles, never code (*.py)
HUB_FILES = [
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "model-*.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
]
# weights files that are pickles: a folder or repository holding only these is refused
PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")


def _offline_error(name: str, err: Exception) -> GenkitError:
    return GenkitError(
        f"Could not fetch {name!r} from the Hugging Face hub ({type(err).__name__}): the id is unknown, the "
        f"repository is gated, or this machine is offline. Check the id, or point model.init_from at a local "
        f"folder with config.json, model.safetensors and the tokenizer files (tokenizer.json, or vocab.json + "
        f"merges.txt)."
    )


def _local(name_or_path: str) -> Path | None:
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists() or name_or_path.startswith((".", "/", "~")):
        raise GenkitError(f"{name_or_path} is not a folder holding a Hugging Face checkpoint.")
    return None


def pretrained_dir(name_or_path: str) -> Path:
    """A local folder as is; otherwise a hub id, downloaded once into the Hugging Face cache
    (its config, safetensors weights and tokenizer files only)."""
    local = _local(name_or_path)
    if local is not None:
        return local
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name_or_path, allow_patterns=HUB_FILES))
    except Exception as err:  # offline, unknown or gated repo: all end the same way for the user
        raise _offline_error(name_or_path, err) from None


def safetensors_files(name_or_path: str) -> list[Path]:
    """The checkpoint's safetensors weights (one file, or the shards its index lists); a folder or
    repository with pickled weights only is refused in one paragraph."""
    folder = pretrained_dir(name_or_path)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [_intact(folder / shard) for shard in shards]
    if (folder / "model.safetensors").is_file():
        return [_intact(folder / "model.safetensors")]
    pickled = [name for name in PICKLED_WEIGHTS if (folder / name).is_file()]
    if pickled or not _local(name_or_path):
        only = f", only {pickled[0]}" if pickled else ""
        raise GenkitError(
            f"{name_or_path} has no safetensors weights (model.safetensors){only}. "
            f"genkit loads weights from safetensors only, because opening a .bin file runs the pickle code inside "
            f"it. Convert it once where you trust it (transformers: model.save_pretrained(folder, "
            f"safe_serialization=True)), or pick a repository that ships model.safetensors."
        )
    raise GenkitError(f"{folder} holds no model.safetensors; it is not a Hugging Face checkpoint folder.")


def _intact(path: Path) -> Path:
    """path, once its header is read: safetensors checks there that the tensors it lists cover the
    file exactly, so a file cut short (a download or copy interrupted, a full disk) is named here in
    one paragraph rather than failing inside the model's constructor or transformers' loader."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt"):
            pass
    except Exception as err:  # a missing shard, a truncated or foreign file: all end the same for the user
        raise CheckpointError(
            f"The weights file {path} cannot be read ({first_line(err)}): it is damaged (a download or copy cut "
            f"short, a full disk), missing, or not a safetensors file. Download or copy it again (a file from the "
            f"hub: delete it from the Hugging Face cache first), or point model.init_from at an intact copy."
        ) from None
    return path


@lru_cache
def pretrained_config(name_or_path: str) -> dict:
    """The checkpoint's config.json (from the hub, only that file is fetched), refused when the
    model needs code of its own to run."""
    local = _local(name_or_path)
    if local is not None:
        path = local / "config.json"
        if not path.is_file():
            raise GenkitError(f"{local} has no config.json; it is not a Hugging Face checkpoint folder.")
    else:
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download(name_or_path, "config.json"))
        except Exception as err:
            raise _offline_error(name_or_path, err) from None
    config = json.loads(path.read_text())
    if config.get("auto_map"):
        raise GenkitError(
            f"{name_or_path} needs code of its own to run (its config.json names {sorted(config['auto_map'])[0]} "
            f"in auto_map), which only trust_remote_code=True would load; genkit never sets it, because that runs "
            f"code from the repository. Pick a model whose architecture transformers itself provides (Llama, "
            f"Qwen2, Mistral, GPT-NeoX, GPT-2, Phi-3, SmolLM, ...)."
        )
    return config


# genkit's size names -> GPT-2 config.json names
GPT2_SIZES = {
    "vocab_size": "vocab_size",
    "block_size": "n_positions",
    "n_layer": "n_layer",
    "n_head": "n_head",
    "n_embd": "n_embd",
}


def pretrained_size(name_or_path: str | None, key: str, default):
    """A size of the checkpoint named by `model.init_from` (a Hugging Face checkpoint or a genkit
    run), or `default` when there is none."""
    if not name_or_path:
        return default
    source = starting_checkpoint(name_or_path)
    if source is not None:
        # runs from before model.net.gelu existed used GPT-2's tanh form
        return network_setting(source, key, default="tanh" if key == "gelu" else None)
    config = pretrained_config(str(name_or_path))
    if key == "vocab_size" and "vocab_size" in config:  # every causal LM's config names it so
        return config["vocab_size"]
    if config.get("model_type") != "gpt2":
        raise GenkitError(
            f"model.init_from={name_or_path} holds a {config.get('model_type')!r} model, and genkit's own "
            f"transformer loads only GPT-2 weights; build the network with transformers instead: "
            f"model/lm_net@model.net=hf."
        )
    if key == "bias":  # every GPT-2 layer has biases
        return True
    if key == "gelu":  # GPT-2's approximation ("gelu_new"; gpt2_config refuses other activations)
        return "tanh"
    return config[GPT2_SIZES.get(key, key)]


def architecture_config(init_from: str | None, architecture) -> dict:
    """The config.json that model/lm_net@model.net=hf builds its network from: `architecture`'s
    when given (a hub id or folder, or a dict of config keys with model_type: from scratch), else
    model.init_from's (a Hugging Face checkpoint, or a genkit run of such a network)."""
    if architecture is not None and not isinstance(architecture, str):
        config = dict(architecture)
        if not config.get("model_type"):
            raise GenkitError(
                "model.net.architecture needs a model_type (e.g. {model_type: llama, hidden_size: 64, "
                "num_hidden_layers: 2, ...}), or a hub id or folder whose config.json it takes."
            )
        return config
    if architecture:
        return pretrained_config(architecture)
    if not init_from:
        raise GenkitError(
            "model/lm_net@model.net=hf builds a transformers model and needs its architecture: "
            "model.init_from=<hub id or folder> (its weights and tokenizer too), or "
            "model.net.architecture=<hub id, folder, or {model_type: llama, ...}> to train one from scratch."
        )
    source = starting_checkpoint(init_from)
    if source is not None:
        return network_setting(source, "config")
    return pretrained_config(str(init_from))
