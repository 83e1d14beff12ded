"""Class conditioning shared by genkit's networks: a one-hot label beside an input vector, and
the projection term of a class-conditional discriminator."""

import torch
import torch.nn.functional as F
from torch import nn


def conditioned(net: nn.Module, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """net(x, labels), or net(x) without labels: unconditional networks (a user's own too) take x alone."""
    return net(x) if labels is None else net(x, labels)


def with_one_hot(z: torch.Tensor, labels: torch.Tensor | None, num_classes: int) -> torch.Tensor:
    """z (B, D) -> (B, D + num_classes) with each row's one-hot label; z as is when unconditional."""
    if not num_classes:
        return z
    if labels is None:
        raise ValueError("this network is class-conditional: pass labels")
    return torch.cat([z, F.one_hot(labels, num_classes).to(z.dtype)], dim=1)


class Projection(nn.Module):
    """The class term of a projection discriminator: <embed(y), features(x)> (Miyato & Koyama 2018, eq. 3)."""

    def __init__(self, num_classes: int, num_features: int):
        super().__init__()
        self.embed = nn.Embedding(num_classes, num_features)
        nn.init.normal_(self.embed.weight, std=0.02)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return (self.embed(labels) * features).sum(1)


def projected_logit(net: nn.Sequential, projection: Projection | None, x, labels) -> torch.Tensor:
    """A discriminator's logit (B,): its last linear layer on the features, plus the projection
    of the features on the class embedding when it is conditional."""
    if projection is None:
        return net(x).squeeze(1)
    if labels is None:
        raise ValueError("this discriminator is class-conditional: pass labels")
    features = net[:-1](x)
    return net[-1](features).squeeze(1) + projection(features, labels)
