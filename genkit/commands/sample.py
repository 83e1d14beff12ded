"""`genkit sample`: generate from a trained checkpoint, which carries everything it needs."""

import logging
import time
from pathlib import Path

import torch
from omegaconf import DictConfig

from genkit.checkpoints.files import resolve_checkpoint, run_dir_of
from genkit.commands.command_options import (
    CHECKPOINT_OPTIONS,
    INFERENCE_OPTIONS,
    check_family_options,
    check_limits,
    check_options,
    family_choices,
)
from genkit.console import tracked
from genkit.errors import GenkitError
from genkit.metrics.text_tasks import complete_file
from genkit.models.base import sample_from, sample_inputs
from genkit.options import BOOLEAN, Option, whole_number
from genkit.runtime import device_for, inference_autocast, inference_precision
from genkit.training.restore import load_model

log = logging.getLogger("genkit")

# the most samples generated without force=true (a grid of more is unreadable; genkit eval scores
# many more in batches), and how many are generated at once, with a progress line per batch
MAX_N = 10000
SAMPLE_BATCH = 256

# this command's own options; the family's (prompt, temperature, steps, label, ...) are declared by
# the family and its data (GenerativeModel.sample_options, GenkitDataModule.input_options)
OPTIONS = {
    **CHECKPOINT_OPTIONS,
    **INFERENCE_OPTIONS,
    "n": Option(64, f"how many samples (more than {MAX_N} with force=true)", whole_number(1), limit=MAX_N),
    "force": Option(False, "run a request past the limits of n and max_new_tokens (it may take minutes)", BOOLEAN),
    "seed": Option(0, "the random seed of the noise", whole_number(0)),
    "out": Option(None, "where to write them (default: <run>/samples/sample_<time>.png or .txt)", shown="out=<file>"),
    "inputs": Option(
        None,
        "a prompt -> completion run: complete every prompt of this file into out= (JSON Lines)",
        shown="inputs=<file.jsonl>",
    ),
}


def _samples(model, datamodule, n: int, generator, options) -> tuple[torch.Tensor, dict]:
    """n samples, in batches of SAMPLE_BATCH with a progress line each when there are several."""
    if n <= SAMPLE_BATCH:
        return sample_from(model, datamodule, n, generator, options)
    inputs = sample_inputs(model, datamodule, n, options)
    starts = range(0, n, SAMPLE_BATCH)
    outs = []
    for start in tracked(starts, len(starts), f"generating {n} samples: batch"):
        size = min(SAMPLE_BATCH, n - start)
        # per-sample inputs (labels) are cut to the batch; shared ones (a prompt) go to every batch
        batch = {k: v[start : start + size] if torch.is_tensor(v) and len(v) == n else v for k, v in inputs.items()}
        outs.append(sample_from(model, datamodule, size, generator, options, batch)[0])
    return torch.cat(outs), inputs


def sample(cfg: DictConfig) -> Path:
    check_options("sample", cfg, OPTIONS)
    check_limits("sample", cfg, OPTIONS, cfg.force)
    path = resolve_checkpoint(cfg.ckpt, cfg.paths.log_dir, cfg.which)
    log.info("No ckpt given: sampling from the newest run, %s" if cfg.ckpt is None else "Sampling from %s", path)
    model, datamodule, _ = load_model(path, trusted_targets=cfg.trusted_targets, data_root=cfg.data_root)
    device = device_for("auto")
    model.to(device)
    precision, why = inference_precision(device, cfg.precision)
    log.info("Precision %s %s", precision, why)

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
    with inference_autocast(device, precision):
        if cfg.inputs:
            return complete_file(model, datamodule, Path(cfg.inputs), cfg.out, {**options, "generator": generator})
        out, inputs = _samples(model, datamodule, cfg.n, generator, options)

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
