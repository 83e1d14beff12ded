"""DCGAN-style generator and discriminator (Radford et al. 2016) for small square images.

One stride-2 stage per doubling of the image size (genkit.models.nets.sizes): 7x7 features to
28x28 images in two stages, 4x4 to 32x32 in three, 4x4 to 64x64 in four; the channels double
at each stage down from the image (width, 2 width, 4 width, ...), as in DCGAN.
With `num_classes` > 0 both are class-conditional: the generator reads a one-hot label beside z
(Mirza & Osindero 2014: its first layer's weight columns are the class embedding), and the
discriminator adds a projection of its features on a class embedding (Miyato & Koyama 2018).
"""

import torch
from torch import nn

from genkit.models.nets.conditioning import Projection, projected_logit, with_one_hot
from genkit.models.nets.sizes import final_size, halvings


class Generator(nn.Module):
    def __init__(
        self, latent_dim: int = 64, channels: int = 1, image_size: int = 28, width: int = 64, num_classes: int = 0
    ):
        super().__init__()
        self.latent_dim, self.num_classes = latent_dim, num_classes
        stages, s = halvings(image_size), final_size(image_size)
        c = width * 2 ** (stages - 1)
        layers: list[nn.Module] = [
            nn.Linear(latent_dim + num_classes, c * s * s, bias=False),
            nn.BatchNorm1d(c * s * s),
            nn.ReLU(inplace=True),
            nn.Unflatten(1, (c, s, s)),  # (B, c, s, s)
        ]
        for _ in range(stages - 1):
            layers += [
                nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1, bias=False),  # (B, c/2, 2x, 2x)
                nn.BatchNorm2d(c // 2),
                nn.ReLU(inplace=True),
            ]
            c //= 2
        layers += [nn.ConvTranspose2d(c, channels, 4, stride=2, padding=1), nn.Tanh()]  # (B, C, H, W)
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(with_one_hot(z, labels, self.num_classes))


class Discriminator(nn.Module):
    """Returns one logit per image (no sigmoid: the losses work on logits)."""

    def __init__(self, channels: int = 1, image_size: int = 28, width: int = 64, num_classes: int = 0):
        super().__init__()
        stages, s = halvings(image_size), final_size(image_size)
        self.num_classes = num_classes
        layers: list[nn.Module] = [
            nn.Conv2d(channels, width, 4, stride=2, padding=1),  # (B, w, H/2, W/2)
            nn.LeakyReLU(0.2, inplace=True),
        ]
        c = width
        for _ in range(stages - 1):
            layers += [
                nn.Conv2d(c, 2 * c, 4, stride=2, padding=1, bias=False),  # (B, 2c, x/2, x/2)
                nn.BatchNorm2d(2 * c),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            c *= 2
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * s * s, 1))
        self.projection = Projection(num_classes, c * s * s) if num_classes else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return projected_logit(self.net, self.projection, x, labels)
