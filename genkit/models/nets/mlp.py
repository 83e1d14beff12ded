"""Fully connected generator and discriminator on flattened images: the GAN of the classic
PyTorch MNIST tutorials (Diego Gomez Mosquera's "GANs from Scratch 1", 2018, after the
multilayer perceptrons of Goodfellow et al. 2014).

Generator: z -> 256 -> 512 -> 1024 -> C*H*W with LeakyReLU(0.2) and a Tanh output.
Discriminator: C*H*W -> 1024 -> 512 -> 256 -> 1 with LeakyReLU(0.2) and dropout 0.3. Unlike the
tutorial it returns the logit, not its sigmoid: genkit's GAN losses work on logits.
The constructors mirror genkit/models/nets/dcgan.py, so either pair fits `model=gan`, and
condition on classes the same way (`num_classes` > 0).
"""

import torch
from torch import nn

from genkit.models.nets.conditioning import Projection, projected_logit, with_one_hot


class Generator(nn.Module):
    """z (B, latent_dim) -> images (B, C, H, W) in [-1, 1]; hidden widths w, 2w, 4w."""

    def __init__(
        self, latent_dim: int = 100, channels: int = 1, image_size: int = 28, width: int = 256, num_classes: int = 0
    ):
        super().__init__()
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.net = nn.Sequential(
            nn.Linear(latent_dim + num_classes, width),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(width, 2 * width),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(2 * width, 4 * width),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(4 * width, channels * image_size * image_size),  # (B, C*H*W)
            nn.Tanh(),
            nn.Unflatten(1, (channels, image_size, image_size)),  # (B, C, H, W)
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(with_one_hot(z, labels, self.num_classes))


class Discriminator(nn.Module):
    """Images (B, C, H, W) -> one logit per image (B,); hidden widths 4w, 2w, w."""

    def __init__(
        self, channels: int = 1, image_size: int = 28, width: int = 256, dropout: float = 0.3, num_classes: int = 0
    ):
        super().__init__()
        self.num_classes = num_classes
        self.net = nn.Sequential(
            nn.Flatten(),  # (B, C*H*W)
            nn.Linear(channels * image_size * image_size, 4 * width),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4 * width, 2 * width),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Dropout(dropout),
            nn.Linear(2 * width, width),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Dropout(dropout),
            nn.Linear(width, 1),  # (B, 1)
        )
        self.projection = Projection(num_classes, width) if num_classes else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return projected_logit(self.net, self.projection, x, labels)  # (B,)
