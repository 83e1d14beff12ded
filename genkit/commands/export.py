"""`genkit export`: a run's weights as one plain checkpoint, LoRA adapters folded in with merge=true.

The file holds what `genkit sample` and `genkit eval` read (weights, the run's config, the data
module's state such as a tokenizer) and none of the training state (optimizer, loops), so it is
the file to hand on. Merged, the model has the parameter names and speed of a model without
adapters, and its outputs equal the adapted model's up to float rounding.
"""

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from genkit.checkpoints.files import AtomicCheckpointIO, config_of, load_checkpoint, resolve_checkpoint
from genkit.commands.options import CHECKPOINT_OPTIONS, MERGE, check_options
from genkit.errors import GenkitError
from genkit.options import Option
from genkit.training.finetune import merge_lora
from genkit.training.restore import load_model

log = logging.getLogger("genkit")

OPTIONS = {
    **CHECKPOINT_OPTIONS,
    "out": Option(None, "where to write it (required)", shown="out=<file>"),
    "merge": MERGE,
}


def export(cfg: DictConfig) -> Path:
    check_options("export", cfg, OPTIONS)
    if not cfg.out:
        raise GenkitError("genkit export needs out=<file>: where to write the checkpoint, e.g. out=model.ckpt.")
    out = Path(cfg.out).expanduser()
    path = resolve_checkpoint(cfg.ckpt, cfg.paths.log_dir, cfg.which)
    if out.resolve() == path.resolve():
        raise GenkitError(f"out={out} is the checkpoint being exported; write the export to another file.")
    checkpoint = load_checkpoint(path)
    run_cfg = config_of(checkpoint, path)
    model, datamodule, _ = load_model(path, trusted_targets=cfg.trusted_targets, data_root=cfg.data_root)
    merged = merge_lora(model) if cfg.merge else 0
    if merged:
        with open_dict(run_cfg):  # the exported model has no adapters to build
            run_cfg.finetune.lora.r = 0
    state_key = type(datamodule).__qualname__
    exported = {
        "state_dict": model.state_dict(),
        "genkit": {
            **checkpoint["genkit"],
            "config": OmegaConf.to_container(run_cfg),
            "exported_from": str(path),
            "merged_lora_layers": merged,
        },
        "global_step": checkpoint.get("global_step"),
        "epoch": checkpoint.get("epoch"),
        state_key: checkpoint.get(state_key) or {},
    }
    AtomicCheckpointIO().save_checkpoint(exported, out)
    how = f"{merged} LoRA layers merged into their weights" if merged else "weights only, no training state"
    if cfg.merge and not merged:
        how += " (the run has no LoRA adapters to merge)"
    log.info("Exported %s to %s: %s", path, out, how)
    return out
