"""`genkit export format=diffusers` through the CLI: a diffusion run trained with
model/denoiser=diffusers_unet comes back from its checkpoint (the trusted-class rebuild) and
diffusers' DDIMPipeline opens the folder and samples from it."""

import numpy as np
import pytest
import torch
from diffusers import DDIMPipeline

from genkit.commands.train import train
from tests.helpers import TINY_IMAGE_RUN, cli_in_process, make_cfg, write_tiny_image_set


@pytest.mark.slow
def test_a_diffusers_unet_run_exports_to_a_pipeline_that_samples(tmp_path):
    root = tmp_path / "data"
    write_tiny_image_set(root / "mnist")
    net = ["model/denoiser@model.net=diffusers_unet", "model.net.base=8", "model.net.channel_mults=[1,2]"]
    train(make_cfg(tmp_path, f"data.root={root}", *TINY_IMAGE_RUN, "model=diffusion", *net))
    run = tmp_path / "outputs" / "run"
    out = cli_in_process("export", f"ckpt={run}", "format=diffusers", f"out={tmp_path / 'pipe'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    pipe = DDIMPipeline.from_pretrained(tmp_path / "pipe")
    images = pipe(batch_size=2, num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np")
    assert images.images.shape == (2, 28, 28, 1) and np.isfinite(images.images).all()
