"""`genkit sample`: generate from a trained checkpoint, which carries everything it needs."""

import logging
import time
from pathlib import Path

import torch
from omegaconf import DictConfig

from genkit.checkpoints.files import resolve_checkpoint, run_dir_of
from genkit.commands.options import CHECKPOINT_OPTIONS, check_family_options, check_options, family_choices
from genkit.errors import GenkitError
from genkit.metrics.text_tasks import complete_file
from genkit.models.base import sample_from
from genkit.options import Option, whole_number
from genkit.runtime import device_for
from genkit.training.restore import load_model

log = logging.getLogger("genkit")

# this command's own options; the family's (prompt, temperature, steps, label, ...) are declared by
# the family and its data (GenerativeModel.sample_options, GenkitDataModule.input_options)
OPTIONS = {
    **CHECKPOINT_OPTIONS,
    "n": Option(64, "how many samples", whole_number(1)),
    "seed": Option(0, "the random seed of the noise", whole_number(0)),
    "out": Option(None, "where to write them (default: <run>/samples/sample_<time>.png or .txt)", shown="out=<file>"),
    "inputs": Option(
        None,
        "a prompt -> completion run: complete every prompt of this file into out= (JSON Lines)",
        shown="inputs=<file.jsonl>",
    ),
}


def sample(cfg: DictConfig) -> Path:
    check_options("sample", cfg, OPTIONS)
    path = resolve_checkpoint(cfg.ckpt, cfg.paths.log_dir, cfg.which)
    log.info("No ckpt given: sampling from the newest run, %s" if cfg.ckpt is None else "Sampling from %s", path)
    model, datamodule, _ = load_model(path, trusted_targets=cfg.trusted_targets, data_root=cfg.data_root)
    device = device_for("auto")
    model.to(device)

    # every other key of the sample config is an option for the family (sample_options) or its data
    options = family_choices("sample", cfg, OPTIONS)
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
    if cfg.inputs:
        return complete_file(model, datamodule, Path(cfg.inputs), cfg.out, {**options, "generator": generator})
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
