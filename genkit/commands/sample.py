"""`genkit sample`: generate from a trained checkpoint, which carries everything it needs."""

import logging
import time
from pathlib import Path

import torch
from omegaconf import DictConfig

from genkit.checkpoints.files import resolve_checkpoint, run_dir_of
from genkit.errors import GenkitError
from genkit.models.base import sample_from
from genkit.options import check_family_options, check_options
from genkit.runtime import device_for
from genkit.training.restore import load_model

log = logging.getLogger("genkit")

# keys of configs/sample.yaml that are not options of a model's sample()
SAMPLE_KEYS = ("ckpt", "which", "n", "seed", "out", "paths", "trusted_targets", "data_root")


def sample(cfg: DictConfig) -> Path:
    check_options("sample", cfg)
    path = resolve_checkpoint(cfg.ckpt, cfg.paths.log_dir, cfg.which)
    log.info("No ckpt given: sampling from the newest run, %s" if cfg.ckpt is None else "Sampling from %s", path)
    model, datamodule, _ = load_model(path, trusted_targets=cfg.trusted_targets, data_root=cfg.data_root)
    device = device_for("auto")
    model.to(device)

    # every other key of the sample config is an option for the family (sample_options) or its data
    options = {k: v for k, v in cfg.items() if k not in SAMPLE_KEYS}
    asked = model.data_inputs(options)
    # an input the model does not ask for (labels of an unconditional model): its options say why
    reasons = {
        option: (
            f"with these options it does not generate from the data's {name}"
            if model.conditional
            else datamodule.input_help.get(name, f"it does not generate from the data's {name}")
        )
        for name, opts in datamodule.input_options.items()
        if name not in asked
        for option in opts
    }
    taken = (*model.sample_options, *datamodule.options_for(asked))
    check_family_options("sample", options, taken, type(model).__name__, reasons)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    out, inputs = sample_from(model, datamodule, cfg.n, generator, options)

    for text in datamodule.samples_as_text(out):
        print(text, end="\n\n")
    stem = run_dir_of(path) / "samples" / f"sample_{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        dest = datamodule.write_samples(out, cfg.out or stem, inputs)
    except OSError as err:
        raise GenkitError(
            f"Could not write the samples to {cfg.out or stem} ({type(err).__name__}: {err.strerror or err}); "
            f"pass out=<a file in a folder you can write>."
        ) from None
    log.info("Wrote %d samples to %s", len(out), dest)
    return dest
