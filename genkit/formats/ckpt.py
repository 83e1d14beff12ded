"""format=ckpt (the default): genkit's own checkpoint, weights and run config without training
state (optimizer, loops), the file that `genkit sample`, `genkit eval` and `model.init_from` open."""

from pathlib import Path

from genkit.checkpoints.files import AtomicCheckpointIO
from genkit.formats.base import Exported, exported_record


def write_ckpt(run: Exported, out: Path) -> Path:
    state_key = type(run.datamodule).__qualname__
    exported = {
        "state_dict": run.model.state_dict(),
        **exported_record(run),
        state_key: run.checkpoint.get(state_key) or {},
    }
    AtomicCheckpointIO().save_checkpoint(exported, out)
    return out
