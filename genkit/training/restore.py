"""Rebuilding the model (and data module) that a genkit checkpoint holds, for sample, eval and
export: the stored config is checked (genkit.checkpoints.trust), then built as a training run is."""

from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import lightning as L
from omegaconf import DictConfig, open_dict

from genkit.checkpoints.files import config_of, load_checkpoint
from genkit.checkpoints.provenance import data_paths_to_use
from genkit.checkpoints.trust import check_config, shipped_data_config
from genkit.data.base import file_keys_of
from genkit.models.base import GenerativeModel
from genkit.training.build import build_datamodule, build_model

# data config keys that name this machine's folders or a starting run, cleared when a checkpoint is
# rebuilt (tests/unit/data/test_file_keys.py counts them as handled)
RESET_ON_RESTORE = ("cache_dir", "pretrained_tokenizer")


class LoadedRun(NamedTuple):
    model: GenerativeModel
    datamodule: L.LightningDataModule
    config: DictConfig


def load_model(
    path: str | Path,
    *,
    trusted_targets: Iterable[str] = (),
    data_root: str | None = None,
    data_path: str | None = None,
    reads_data: bool = False,
    checkpoint: dict | None = None,
) -> LoadedRun:
    """Rebuild the model (and its data module) of a genkit checkpoint, in eval mode.

    The checkpoint's config is data, not code (genkit.checkpoints.trust): only trusted classes are built,
    data sets live under this machine's data root (`data_root`, else $GENKIT_DATA_DIR, else the
    user cache), and a built-in data set's files and checksums are genkit's own. A data path the
    checkpoint names is used only if this machine wrote it (genkit.checkpoints.provenance), else
    `data_path` (the user's) replaces it; a command that `reads_data` (eval) stops without one.
    `checkpoint`: the file as the command already read it (load_checkpoint), so it is read once."""
    checkpoint = load_checkpoint(path) if checkpoint is None else checkpoint
    run_cfg = config_of(checkpoint, path)
    check_config(run_cfg, f"The config of checkpoint {path}", trusted_targets)
    # a built-in data set's folder holds only its official files: genkit's list and checksums
    shipped = shipped_data_config(run_cfg.data.get("folder") or run_cfg.data.get("name"))
    keys = file_keys_of(run_cfg.data)  # after check_config: it imports the data module
    paths = data_paths_to_use(run_cfg.data, checkpoint, path, data_path, reads_data, keys, shipped)
    with open_dict(run_cfg):
        run_cfg.data.update(paths)
        run_cfg.data.root = data_root
        # the machine's own caches, and the tokenizer of the run it started from (the checkpoint
        # holds its own): never where a checkpoint says
        for key in RESET_ON_RESTORE:
            if key in run_cfg.data:
                run_cfg.data[key] = None
        if shipped is not None and shipped.get("files"):  # data=pairs has a files key, null unless the user's
            run_cfg.data.files, run_cfg.data.mirrors = shipped.files, shipped.mirrors
        if run_cfg.model.get("init_from"):
            # `model.init_from` names the weights a run started from; the checkpoint holds its own
            run_cfg.model.init_from = None
        # compiling is a training speed-up: eval and sample run the plain networks
        run_cfg.trainer.compile = False
    model = build_model(run_cfg, report=False)
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    datamodule = build_datamodule(run_cfg)
    # what the data module saved of itself (a text model's tokenizer): sampling needs no data files
    datamodule.load_state_dict(checkpoint.get(type(datamodule).__qualname__) or {})
    return LoadedRun(model, datamodule, run_cfg)
