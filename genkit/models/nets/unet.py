"""A small U-Net denoiser (Ho et al. 2020, after PixelCNN++): residual blocks with a time
embedding, GroupNorm and SiLU, self-attention at the low resolutions, skip connections.

With `num_classes` > 0 it is class-conditional: a learned class embedding is added to the time
embedding, and index `num_classes` is the null class that classifier-free guidance trains with
(Ho & Salimans 2022)."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from genkit.models.nets.sizes import unet_levels


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of diffusion times t (B,) -> (B, dim) (Vaswani et al. 2017)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=-1)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, t_dim: int, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(t_dim, c_out)
        self.norm2, self.conv2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(t_emb)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + self.skip(x)


class Attention(nn.Module):
    """Self-attention over the H*W positions of a feature map."""

    def __init__(self, channels: int, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.norm = _norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, self.heads, C // self.heads, H * W).unbind(1)
        # (B, heads, hs, HW) -> (B, heads, HW, hs)
        y = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.proj(y.transpose(-1, -2).reshape(B, C, H, W))


class Stage(nn.Module):
    """A residual block, followed by self-attention at the levels that have it."""

    def __init__(self, c_in: int, c_out: int, t_dim: int, dropout: float, attention: bool):
        super().__init__()
        self.res = ResBlock(c_in, c_out, t_dim, dropout)
        self.attn = Attention(c_out) if attention else nn.Identity()

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        return self.attn(self.res(x, t_emb))


class UNet(nn.Module):
    """eps- or v-prediction network: (x_t (B, C, H, W), t (B,)[, labels (B,)]) -> (B, C, H, W).

    `channel_mults` gives one resolution level each (28 -> 14 -> 7 for (1, 2, 2)); null: one level
    per doubling of `image_size` (genkit.models.nets.sizes), (1, 2, 2) at 28 pixels, (1, 2, 2, 2)
    at 32, (1, 2, 2, 2, 2) at 64. `attention_levels` the levels (0 = full resolution) that get
    self-attention; null: those of 8 pixels or fewer, where attention over H*W positions is cheap.
    """

    # the layers LoRA adapts unless finetune.lora.targets names others: the residual blocks'
    # convolutions and the attention projections
    lora_targets = ("*.conv1", "*.conv2", "*.qkv", "*.proj")

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
    ):
        super().__init__()
        channel_mults, attention_levels = unet_levels(image_size, channel_mults, attention_levels)
        t_dim = 4 * base
        self.base, self.num_classes = base, num_classes
        self.time_mlp = nn.Sequential(nn.Linear(base, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
        # one row per class and one for "no class" (the null label, index num_classes)
        self.class_embed = nn.Embedding(num_classes + 1, t_dim) if num_classes else None
        self.stem = nn.Conv2d(channels, base, 3, padding=1)
        widths = [base * m for m in channel_mults]
        last = len(widths) - 1

        # encoder: every stage output (and every downsampled map) is kept as a skip connection
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        skip_channels, c = [base], base
        for level, w in enumerate(widths):
            stages = nn.ModuleList()
            for _ in range(blocks_per_level):
                stages.append(Stage(c, w, t_dim, dropout, level in attention_levels))
                c = w
                skip_channels.append(c)
            self.down.append(stages)
            if level < last:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))  # (B, c, H/2, W/2)
                skip_channels.append(c)

        self.mid1 = Stage(c, c, t_dim, dropout, attention=True)
        self.mid2 = Stage(c, c, t_dim, dropout, attention=False)

        # decoder: one more stage per level than the encoder, each eating one skip
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for level in reversed(range(len(widths))):
            stages = nn.ModuleList()
            for _ in range(blocks_per_level + 1):
                stages.append(Stage(c + skip_channels.pop(), widths[level], t_dim, dropout, level in attention_levels))
                c = widths[level]
            self.up.append(stages)
            if level > 0:
                self.upsample.append(
                    nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1))
                )
        self.head = nn.Sequential(_norm(c), nn.SiLU(), nn.Conv2d(c, channels, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """labels (B,) in [0, num_classes]; num_classes (or None) is the null class."""
        t_emb = self.time_mlp(timestep_embedding(t, self.base))
        if self.class_embed is not None:
            if labels is None:
                labels = torch.full_like(t, self.num_classes)
            t_emb = t_emb + self.class_embed(labels)
        h = self.stem(x)
        skips = [h]
        for level, stages in enumerate(self.down):
            for stage in stages:
                h = stage(h, t_emb)
                skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
                skips.append(h)
        h = self.mid2(self.mid1(h, t_emb), t_emb)
        for level, stages in enumerate(self.up):
            for stage in stages:
                h = stage(torch.cat([h, skips.pop()], dim=1), t_emb)
            if level < len(self.upsample):
                h = self.upsample[level](h)
        return self.head(h)
