"""fid_clf of a diffusion run sampled two ways: genkit's DDIM sampler, and diffusers' DDIMPipeline
opened from the run's `genkit export format=diffusers` folder, from the same noise.

python scripts/diffusers_fid.py <run dir or .ckpt> [--n 1000] [--steps 50] [--batch 64]

Both image sets are scored as `genkit eval` scores its samples (genkit.metrics: the data set's
cached domain classifier, the test images as the real set). Batch i of both starts from the noise
of seed i, so the two sets differ only by the samplers (diffusers' DDIM steps on the grid
T-1, T-1-T/n, ...; genkit's on round(linspace(T-1, 0, n))). Prints both scores, their ratio,
and the largest pixel difference between corresponding images. Needs GENKIT_DATA_DIR.
"""

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import torch
from diffusers import DDIMPipeline

from genkit.checkpoints.files import resolve_checkpoint
from genkit.formats.base import Exported
from genkit.formats.diffusers import write_diffusers
from genkit.metrics.classifier import domain_classifier
from genkit.metrics.image_scores import classifier_scores
from genkit.training.restore import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    path = resolve_checkpoint(args.ckpt, Path("outputs"), None)
    model, datamodule, _ = load_model(path, trusted_targets=[], data_root=os.environ.get("GENKIT_DATA_DIR"))
    model.eval()
    datamodule.setup()
    classifier, record = domain_classifier(datamodule, device="cpu")
    print(f"{path}: step {torch.load(path, weights_only=True, map_location='cpu').get('global_step')}, "
          f"classifier test accuracy {record['test_accuracy']}")  # fmt: skip
    sizes = [min(args.batch, args.n - start) for start in range(0, args.n, args.batch)]
    with tempfile.TemporaryDirectory() as tmp:
        pipe = DDIMPipeline.from_pretrained(
            write_diffusers(Exported(model, datamodule, None, {}, path, 0), Path(tmp) / "p")
        )
        pipe.set_progress_bar_config(disable=True)
        images, seconds = {}, {}
        start = time.perf_counter()
        images["genkit"] = [
            model.sample(size, generator=torch.Generator().manual_seed(i), steps=args.steps)
            for i, size in enumerate(sizes)
        ]
        seconds["genkit"] = time.perf_counter() - start
        start = time.perf_counter()
        images["diffusers"] = []
        for i, size in enumerate(sizes):
            out = pipe(
                batch_size=size, generator=torch.Generator().manual_seed(i), num_inference_steps=args.steps,
                eta=0.0, use_clipped_model_output=True, output_type="np",
            ).images  # fmt: skip
            images["diffusers"].append(torch.from_numpy(out).permute(0, 3, 1, 2) * 2 - 1)  # NHWC [0,1] -> genkit's
        seconds["diffusers"] = time.perf_counter() - start
    scores = {
        name: classifier_scores(classifier, datamodule.test_images(), iter(batches), "cpu")
        for name, batches in images.items()
    }
    gap = max((a - b).abs().max().item() for a, b in zip(images["genkit"], images["diffusers"], strict=True))
    for name in images:
        print(f"{name:9s} n={args.n} steps={args.steps}: fid_clf {scores[name]['fid_clf']:.3f}  "
              f"is_clf {scores[name]['is_clf']:.3f}  sampling {seconds[name]:.0f} s")  # fmt: skip
    print(f"fid_clf diffusers / genkit: {scores['diffusers']['fid_clf'] / scores['genkit']['fid_clf']:.3f}; "
          f"largest pixel difference between corresponding images (range 2): {gap:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
