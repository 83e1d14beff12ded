"""`genkit sample`: generate from a trained checkpoint, which carries everything it needs."""

import logging
import time
from pathlib import Path

import torch
from omegaconf import DictConfig

from genkit.build import build_datamodule, build_model
from genkit.callbacks.samples import generate, save_grid, write_text
from genkit.checkpoints import config_of, load_checkpoint, resolve_checkpoint, run_dir_of

log = logging.getLogger("genkit")

# keys of configs/sample.yaml that are not options of a model's sample()
SAMPLE_KEYS = ("ckpt", "n", "seed", "out", "paths")


def load_model(path: str | Path):
    """Rebuild the model (and its data module) of a genkit checkpoint, in eval mode."""
    checkpoint = load_checkpoint(path)
    run_cfg = config_of(checkpoint, path)
    if run_cfg.model.get("init_from"):
        # the checkpoint's own weights replace the pretrained ones: do not fetch those again
        run_cfg.model.init_from = None
    model = build_model(run_cfg)
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    return model, build_datamodule(run_cfg), run_cfg


def sample(cfg: DictConfig) -> Path:
    path = resolve_checkpoint(cfg.ckpt, cfg.paths.log_dir)
    if cfg.ckpt is None:
        log.info("No ckpt given: using the newest run's %s", path)
    model, datamodule, _ = load_model(path)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)

    # every other key of the sample config is an option of the family's sample(), if it takes it
    options = {k: v for k, v in cfg.items() if k not in SAMPLE_KEYS}
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    out = generate(model, datamodule, cfg.n, generator, **options)

    stem = run_dir_of(path) / "samples" / f"sample_{time.strftime('%Y%m%d-%H%M%S')}"
    if out.is_floating_point():
        dest = save_grid(out, cfg.out or stem.with_suffix(".png"))
    else:
        texts = datamodule.decode_batch(out)
        for text in texts:
            print(text, end="\n\n")
        dest = write_text(texts, cfg.out or stem.with_suffix(".txt"))
    log.info("Wrote %d samples to %s", cfg.n, dest)
    return dest
