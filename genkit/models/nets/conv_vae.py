"""Convolutional encoder and decoder for a VAE on small square images (28x28 by default).

One stride-2 stage per doubling of the image size (genkit.models.nets.sizes: two at 28 pixels,
three at 32, four at 64), the channels doubling at each stage down from the image.
With `num_classes` > 0 they make a conditional VAE (Sohn et al. 2015): the encoder reads a
one-hot label beside its image features, q(z|x, y), and the decoder beside z, p(x|z, y).
"""

import torch
from torch import nn

from genkit.models.nets.conditioning import with_one_hot
from genkit.models.nets.sizes import final_size, halvings


class Encoder(nn.Module):
    """x (B, C, H, W) -> mean and log-variance of q(z|x), each (B, latent_dim)."""

    def __init__(
        self, channels: int = 1, image_size: int = 28, latent_dim: int = 32, width: int = 32, num_classes: int = 0
    ):
        super().__init__()
        stages, s = halvings(image_size), final_size(image_size)
        self.latent_dim, self.num_classes = latent_dim, num_classes
        layers: list[nn.Module] = []
        c_in, c = channels, width
        for _ in range(stages):
            layers += [nn.Conv2d(c_in, c, 4, stride=2, padding=1), nn.SiLU()]  # (B, c, x/2, x/2)
            c_in, c = c, 2 * c
        layers.append(nn.Flatten())  # (B, c_in * s * s)
        self.n_feature_layers = len(layers)
        self.net = nn.Sequential(
            *layers,
            nn.Linear(c_in * s * s + num_classes, 256),
            nn.SiLU(),
            nn.Linear(256, 2 * latent_dim),
        )

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.net[: self.n_feature_layers](x)  # (B, c * s * s)
        head = self.net[self.n_feature_layers :]
        mean, logvar = head(with_one_hot(features, labels, self.num_classes)).chunk(2, dim=1)
        return mean, logvar


class Decoder(nn.Module):
    """z (B, latent_dim) -> Bernoulli logits (B, C, H, W)."""

    def __init__(
        self, channels: int = 1, image_size: int = 28, latent_dim: int = 32, width: int = 32, num_classes: int = 0
    ):
        super().__init__()
        stages, s = halvings(image_size), final_size(image_size)
        self.num_classes = num_classes
        c = width * 2 ** (stages - 1)
        layers: list[nn.Module] = [
            nn.Linear(latent_dim + num_classes, 256),
            nn.SiLU(),
            nn.Linear(256, c * s * s),
            nn.SiLU(),
            nn.Unflatten(1, (c, s, s)),  # (B, c, s, s)
        ]
        for _ in range(stages - 1):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1), nn.SiLU()]  # (B, c/2, 2x, 2x)
            c //= 2
        layers.append(nn.ConvTranspose2d(c, channels, 4, stride=2, padding=1))  # (B, C, H, W)
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(with_one_hot(z, labels, self.num_classes))
