"""DCGAN-style generator and discriminator (Radford et al. 2016) for small square images.

Two stride-2 stages map 7x7 features to 28x28 images (any size divisible by 4 works).
With `num_classes` > 0 both are class-conditional: the generator reads a one-hot label beside z
(Mirza & Osindero 2014: its first layer's weight columns are the class embedding), and the
discriminator adds a projection of its features on a class embedding (Miyato & Koyama 2018).
"""

import torch
from torch import nn

from genkit.models.nets.conditioning import Projection, projected_logit, with_one_hot


class Generator(nn.Module):
    def __init__(
        self, latent_dim: int = 64, channels: int = 1, image_size: int = 28, width: int = 64, num_classes: int = 0
    ):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"image_size must be divisible by 4, got {image_size}")
        self.latent_dim, self.num_classes = latent_dim, num_classes
        s = image_size // 4
        self.net = nn.Sequential(
            nn.Linear(latent_dim + num_classes, 2 * width * s * s, bias=False),
            nn.BatchNorm1d(2 * width * s * s),
            nn.ReLU(inplace=True),
            nn.Unflatten(1, (2 * width, s, s)),  # (B, 2w, s, s)
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False),  # (B, w, 2s, 2s)
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1),  # (B, C, 4s, 4s)
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(with_one_hot(z, labels, self.num_classes))


class Discriminator(nn.Module):
    """Returns one logit per image (no sigmoid: the losses work on logits)."""

    def __init__(self, channels: int = 1, image_size: int = 28, width: int = 64, num_classes: int = 0):
        super().__init__()
        s = image_size // 4
        self.num_classes = num_classes
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=2, padding=1),  # (B, w, 2s, 2s)
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=False),  # (B, 2w, s, s)
            nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Flatten(),
            nn.Linear(2 * width * s * s, 1),
        )
        self.projection = Projection(num_classes, 2 * width * s * s) if num_classes else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return projected_logit(self.net, self.projection, x, labels)
