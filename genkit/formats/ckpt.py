"""format=ckpt (the default): genkit's own checkpoint, weights and run config without training
state (optimizer, loops), the file that `genkit sample`, `genkit eval` and `model.init_from` open."""

from pathlib import Path

from omegaconf import OmegaConf

from genkit.checkpoints.files import AtomicCheckpointIO
from genkit.formats.base import Exported


def write_ckpt(run: Exported, out: Path) -> Path:
    state_key = type(run.datamodule).__qualname__
    exported = {
        "state_dict": run.model.state_dict(),
        "genkit": {
            **run.checkpoint["genkit"],
            "config": OmegaConf.to_container(run.config),
            "exported_from": str(run.source),
            "merged_lora_layers": run.merged,
        },
        "global_step": run.checkpoint.get("global_step"),
        "epoch": run.checkpoint.get("epoch"),
        state_key: run.checkpoint.get(state_key) or {},
    }
    AtomicCheckpointIO().save_checkpoint(exported, out)
    return out
