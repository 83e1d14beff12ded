"""Convolutional encoder and decoder for a VAE on small square images (28x28 by default).

With `num_classes` > 0 they make a conditional VAE (Sohn et al. 2015): the encoder reads a
one-hot label beside its image features, q(z|x, y), and the decoder beside z, p(x|z, y).
"""

import torch
from torch import nn

from genkit.models.nets.conditioning import with_one_hot


class Encoder(nn.Module):
    """x (B, C, H, W) -> mean and log-variance of q(z|x), each (B, latent_dim)."""

    def __init__(
        self, channels: int = 1, image_size: int = 28, latent_dim: int = 32, width: int = 32, num_classes: int = 0
    ):
        super().__init__()
        s = image_size // 4
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=2, padding=1),  # (B, w, H/2, W/2)
            nn.SiLU(),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),  # (B, 2w, H/4, W/4)
            nn.SiLU(),
            nn.Flatten(),
            nn.Linear(2 * width * s * s + num_classes, 256),
            nn.SiLU(),
            nn.Linear(256, 2 * latent_dim),
        )

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.net[:5](x)  # (B, 2w * H/4 * W/4)
        mean, logvar = self.net[5:](with_one_hot(features, labels, self.num_classes)).chunk(2, dim=1)
        return mean, logvar


class Decoder(nn.Module):
    """z (B, latent_dim) -> Bernoulli logits (B, C, H, W)."""

    def __init__(
        self, channels: int = 1, image_size: int = 28, latent_dim: int = 32, width: int = 32, num_classes: int = 0
    ):
        super().__init__()
        s = image_size // 4
        self.num_classes = num_classes
        self.net = nn.Sequential(
            nn.Linear(latent_dim + num_classes, 256),
            nn.SiLU(),
            nn.Linear(256, 2 * width * s * s),
            nn.SiLU(),
            nn.Unflatten(1, (2 * width, s, s)),  # (B, 2w, H/4, W/4)
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),  # (B, w, H/2, W/2)
            nn.SiLU(),
            nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1),  # (B, C, H, W)
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(with_one_hot(z, labels, self.num_classes))
