"""Hugging Face GPT-2 checkpoints given as a hub id or a local folder: their sizes, weights and tokenizer files."""

import json
from functools import lru_cache
from pathlib import Path

from genkit.checkpoints.starting_weights import network_setting, starting_checkpoint
from genkit.errors import GenkitError

# what genkit reads from a GPT-2 checkpoint folder
GPT2_FILES = [
    "config.json",
    "model.safetensors",
    "pytorch_model.bin",
    "tokenizer.json",
    "vocab.json",
    "merges.txt",
]


def _offline_error(name: str, err: Exception) -> GenkitError:
    return GenkitError(
        f"Could not fetch {name!r} from the Hugging Face hub ({type(err).__name__}). Offline, point "
        f"model.init_from at a local folder with config.json, model.safetensors (or pytorch_model.bin) "
        f"and the tokenizer files (tokenizer.json, or vocab.json + merges.txt)."
    )


def _local(name_or_path: str) -> Path | None:
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists() or name_or_path.startswith((".", "/", "~")):
        raise GenkitError(f"{name_or_path} is not a folder holding a Hugging Face checkpoint.")
    return None


def pretrained_dir(name_or_path: str) -> Path:
    """A local folder as is; otherwise a hub id, downloaded once into the Hugging Face cache."""
    local = _local(name_or_path)
    if local is not None:
        return local
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name_or_path, allow_patterns=GPT2_FILES))
    except Exception as err:  # offline, unknown or gated repo: all end the same way for the user
        raise _offline_error(name_or_path, err) from None


@lru_cache
def pretrained_config(name_or_path: str) -> dict:
    """The checkpoint's config.json (from the hub, only that file is fetched)."""
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
    return json.loads(path.read_text())


# genkit's size names -> GPT-2 config.json names
GPT2_SIZES = {
    "vocab_size": "vocab_size",
    "block_size": "n_positions",
    "n_layer": "n_layer",
    "n_head": "n_head",
    "n_embd": "n_embd",
}


def pretrained_size(name_or_path: str | None, key: str, default):
    """A size of the checkpoint named by `model.init_from` (a Hugging Face GPT-2 or a genkit
    run), or `default` when there is none."""
    if not name_or_path:
        return default
    source = starting_checkpoint(name_or_path)
    if source is not None:
        # runs from before model.net.gelu existed used GPT-2's tanh form
        return network_setting(source, key, default="tanh" if key == "gelu" else None)
    if key == "bias":  # every GPT-2 layer has biases
        return True
    if key == "gelu":  # GPT-2's approximation ("gelu_new"; gpt2_config refuses other activations)
        return "tanh"
    return pretrained_config(str(name_or_path))[GPT2_SIZES.get(key, key)]
