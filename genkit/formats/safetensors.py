"""format=safetensors, for every family: model.safetensors and genkit.json (the run config and the
data module's state) in one folder that `genkit sample` and `genkit eval` open with no pickle
involved (genkit.checkpoints.safetensors_folder); a text model's tokenizer.json beside them."""

import json
from pathlib import Path

from genkit.checkpoints.safetensors_folder import write_safetensors_folder
from genkit.errors import GenkitError
from genkit.formats.base import Exported, exported_record, write_folder
from genkit.formats.tokenizer_json import save_tokenizer_files


def write_safetensors(run: Exported, out: Path) -> Path:
    state_key = type(run.datamodule).__qualname__
    meta = {**exported_record(run), "data_state": {state_key: run.checkpoint.get(state_key) or {}}}
    try:
        json.dumps(meta)
    except TypeError as err:
        raise GenkitError(
            f"The run {run.source} stores data-module state that is not plain values ({err}), so it has no "
            f"safetensors form; export it as format=ckpt."
        ) from None

    def fill(folder: Path) -> None:
        write_safetensors_folder(folder, run.model.state_dict(), meta)
        if run.model.modality == "text":  # for readers other than genkit: the tokenizer in its usual file
            save_tokenizer_files(run.datamodule.tokenizer, folder, run.config.data.block_size)

    return write_folder(out, fill)
