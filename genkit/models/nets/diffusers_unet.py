"""diffusers' UNet2DModel as a genkit denoiser, so that a run exports to diffusers' own pipelines
(`genkit export format=diffusers`) with nothing converted.

Why not map genkit's U-Net (nets/unet.py) onto UNet2DModel instead: the two are the same
network (same time embedding, residual blocks, GroupNorm, attention, skips and upsampling) but
for one place: diffusers' ResnetBlock2D applies SiLU to the time embedding before each block's
projection, genkit's projects it as it is, and UNet2DModel has no setting that skips that SiLU.
A converted genkit U-Net would therefore not compute what genkit's computes. Writing our own
diffusers model class would need `trust_remote_code` to open, which genkit asks no one to do.
So a run that is meant for diffusers trains diffusers' network: `model/denoiser=diffusers_unet`
(docs/use-elsewhere.md has the measured speed and quality of both).

The arguments mirror genkit's UNet, so one config swaps for the other.
"""

import torch
from diffusers import UNet2DModel
from torch import nn

from genkit.models.nets.sizes import unet_levels


class DiffusersUNet(nn.Module):
    """(x_t (B, C, H, W), t (B,)[, labels (B,)]) -> (B, C, H, W), computed by `self.unet`.

    `channel_mults`, `attention_levels`, `blocks_per_level` and `num_classes` mean what they mean
    for genkit's UNet (the null class for classifier-free guidance is index num_classes).
    Attention has `heads` heads at the deepest level; diffusers fixes the head width for the
    whole network, so shallower levels with attention get fewer."""

    # the layers LoRA adapts unless finetune.lora.targets names others: the residual blocks'
    # convolutions and the attention projections (diffusers' names; peft's usual choice for a UNet)
    lora_targets = ("*.conv1", "*.conv2", "*.to_q", "*.to_k", "*.to_v", "*.to_out.0")

    def __init__(
        self,
        channels: int = 1,
        base: int = 32,
        channel_mults: tuple[int, ...] | None = (1, 2, 2),
        blocks_per_level: int = 1,
        attention_levels: tuple[int, ...] | None = (2,),
        dropout: float = 0.1,
        num_classes: int = 0,
        image_size: int = 28,
        heads: int = 4,
    ):
        super().__init__()
        channel_mults, attention_levels = unet_levels(image_size, channel_mults, attention_levels)
        widths = [base * m for m in channel_mults]
        levels = range(len(widths))
        self.num_classes = num_classes
        self.unet = UNet2DModel(
            sample_size=image_size,
            in_channels=channels,
            out_channels=channels,
            block_out_channels=widths,
            layers_per_block=blocks_per_level,
            down_block_types=[("AttnDownBlock2D" if i in attention_levels else "DownBlock2D") for i in levels],
            up_block_types=[("AttnUpBlock2D" if i in attention_levels else "UpBlock2D") for i in reversed(levels)],
            attention_head_dim=widths[-1] // heads,
            # genkit's U-Net: min(8, channels) groups; every width here is at least `base`
            norm_num_groups=min(8, base),
            dropout=dropout,
            # genkit's sinusoids: sin then cos, frequencies 10000^(-i/half) (flip and shift off)
            flip_sin_to_cos=False,
            freq_shift=0,
            # one row per class and one for the null class
            num_class_embeds=num_classes + 1 if num_classes else None,
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes and labels is None:
            labels = torch.full_like(t, self.num_classes)
        return self.unet(x, t, class_labels=labels if self.num_classes else None).sample
