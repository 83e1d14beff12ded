"""format=diffusers: diffusers' own DDIMPipeline opens the folder, and its U-Net step, noise
schedule and DDIM loop reproduce genkit's (the EMA weights, eps and v, linear and cosine)."""

from functools import partial
from pathlib import Path

import pytest
import torch
from diffusers import DDIMPipeline, DDIMScheduler, UNet2DModel

from genkit.formats.base import Exported
from genkit.formats.diffusers import write_diffusers
from genkit.models.diffusion import Diffusion
from genkit.models.nets.diffusers_unet import DiffusersUNet

T = 20  # training timesteps: with steps = T, genkit's and diffusers' DDIM visit the same timesteps


def tiny_diffusion(*, schedule: str, objective: str, num_classes: int = 0) -> Diffusion:
    torch.manual_seed(0)
    net = DiffusersUNet(
        channels=1, base=8, channel_mults=(1, 2), attention_levels=(1,), dropout=0.0, image_size=8,
        num_classes=num_classes,
    )  # fmt: skip
    model = Diffusion(
        net, partial(torch.optim.Adam), timesteps=T, schedule=schedule, objective=objective,
        image_shape=(1, 8, 8), conditional=bool(num_classes),
    )  # fmt: skip
    with torch.no_grad():  # EMA weights unlike the live ones, so the test sees which were written
        for p in model.ema_net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def exported(model: Diffusion, out: Path) -> Path:
    return write_diffusers(Exported(model, None, None, {}, Path("run.ckpt"), 0), out)


@pytest.mark.parametrize("schedule,objective", [("linear", "eps"), ("cosine", "v")])
def test_ddim_pipeline_reproduces_genkit(tmp_path, schedule, objective):
    model = tiny_diffusion(schedule=schedule, objective=objective)
    pipe = DDIMPipeline.from_pretrained(exported(model, tmp_path / "pipe"))

    # the schedule: diffusers' alpha_bar from the written betas is genkit's
    torch.testing.assert_close(pipe.scheduler.alphas_cumprod, model.process.alpha_bar, atol=1e-6, rtol=0)
    assert pipe.scheduler.config.prediction_type == {"eps": "epsilon", "v": "v_prediction"}[objective]

    # one denoising step: the loaded UNet2DModel computes what genkit's EMA denoiser does
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([0, 7, T - 1])
    with torch.no_grad():
        torch.testing.assert_close(pipe.unet(x, t).sample, model.ema_net(x, t), atol=1e-4, rtol=0)

    # a whole DDIM run from the same noise (the same generator draws it first in both)
    ours = model.sample(4, generator=torch.Generator().manual_seed(1), steps=T)
    theirs = pipe(
        batch_size=4, generator=torch.Generator().manual_seed(1), num_inference_steps=T, eta=0.0,
        use_clipped_model_output=True, output_type="np",
    ).images  # fmt: skip
    theirs = torch.from_numpy(theirs).permute(0, 3, 1, 2) * 2 - 1  # (B, H, W, C) in [0, 1] -> genkit's
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=0)


def test_class_conditional_run_samples_by_class_through_its_unet_and_scheduler(tmp_path):
    """What docs/use-elsewhere.md shows for a conditional run: diffusers' pipelines pass no class,
    so the loop is written out over the exported unet and scheduler."""
    model = tiny_diffusion(schedule="cosine", objective="v", num_classes=3)
    folder = exported(model, tmp_path / "pipe")
    unet = UNet2DModel.from_pretrained(folder, subfolder="unet")
    scheduler = DDIMScheduler.from_pretrained(folder, subfolder="scheduler")
    labels = torch.tensor([0, 1, 2, 1])
    ours = model.sample(4, generator=torch.Generator().manual_seed(2), steps=T, labels=labels, guidance=0.0)

    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    scheduler.set_timesteps(T)
    with torch.no_grad():
        for t in scheduler.timesteps:
            prediction = unet(x, t, class_labels=labels).sample
            x = scheduler.step(prediction, t, x, use_clipped_model_output=True).prev_sample
    torch.testing.assert_close(x.clamp(-1, 1), ours, atol=1e-4, rtol=0)
