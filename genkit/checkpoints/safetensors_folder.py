"""A genkit run as a folder of plain data (`genkit export format=safetensors`): the weights in
model.safetensors, the run config and the data module's state (a text model's tokenizer) in
genkit.json. `genkit sample` and `genkit eval` open it as they open a .ckpt, and nothing in it is
unpickled: safetensors holds only tensors, JSON only values.
"""

import json
from pathlib import Path
from typing import Any

import torch

from genkit.errors import CheckpointError, first_line

WEIGHTS = "model.safetensors"
META = "genkit.json"
LAYOUT = "genkit-safetensors/1"


def is_safetensors_folder(path: Path) -> bool:
    return path.is_dir() and (path / META).is_file() and (path / WEIGHTS).is_file()


def write_safetensors_folder(folder: Path, state_dict: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """meta: {"genkit": ..., "global_step": ..., "epoch": ..., "data_state": {key: state}}, all JSON."""
    from safetensors.torch import save_file

    # safetensors stores no tensor twice: tied weights (GPT's embedding and output layer) are
    # written as copies, and loading ties them again as the rebuilt model's parameters are tied
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    save_file(tensors, str(folder / WEIGHTS), metadata={"format": "pt", "genkit": LAYOUT})
    (folder / META).write_text(json.dumps({"layout": LAYOUT, **meta}, indent=1))


def read_safetensors_folder(folder: Path) -> dict[str, Any]:
    """The folder as the dict a .ckpt holds (state_dict, genkit, the data module's state)."""
    from safetensors.torch import load_file

    try:
        meta = json.loads((folder / META).read_text())
        state_dict = load_file(str(folder / WEIGHTS))
    except Exception as err:  # a damaged file fails in several ways; all end the same for the user
        raise CheckpointError(
            f"The exported model {folder} cannot be read ({first_line(err, 200)}). "
            f"Its {WEIGHTS} or {META} is truncated or corrupt; export the run again."
        ) from None
    if not isinstance(meta, dict) or meta.get("layout") != LAYOUT or "genkit" not in meta:
        raise CheckpointError(f"{folder / META} is not a genkit export ({LAYOUT}); export the run again.")
    return {
        "state_dict": state_dict,
        "genkit": meta["genkit"],
        "global_step": meta.get("global_step"),
        "epoch": meta.get("epoch"),
        **(meta.get("data_state") or {}),
    }
