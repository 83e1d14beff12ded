"""DCGAN-style generator and discriminator (Radford et al. 2016) for small square images.

Two stride-2 stages map 7x7 features to 28x28 images (any size divisible by 4 works).
"""

import torch
from torch import nn


class Generator(nn.Module):
    def __init__(self, latent_dim: int = 64, channels: int = 1, image_size: int = 28, width: int = 64):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"image_size must be divisible by 4, got {image_size}")
        self.latent_dim = latent_dim
        s = image_size // 4
        self.net = nn.Sequential(
            nn.Linear(latent_dim, 2 * width * s * s, bias=False),
            nn.BatchNorm1d(2 * width * s * s),
            nn.ReLU(inplace=True),
            nn.Unflatten(1, (2 * width, s, s)),  # (B, 2w, s, s)
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False),  # (B, w, 2s, 2s)
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1),  # (B, C, 4s, 4s)
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Discriminator(nn.Module):
    """Returns one logit per image (no sigmoid: the losses work on logits)."""

    def __init__(self, channels: int = 1, image_size: int = 28, width: int = 64):
        super().__init__()
        s = image_size // 4
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=2, padding=1),  # (B, w, 2s, 2s)
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=False),  # (B, 2w, s, s)
            nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Flatten(),
            nn.Linear(2 * width * s * s, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)
