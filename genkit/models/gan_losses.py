"""The GAN's two losses, shared by the GAN family and its hand-written reference loop."""

import torch
import torch.nn.functional as F

LOSSES = ("non_saturating", "hinge")


def discriminator_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    if kind == "hinge":
        # Lim & Ye 2017: E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    # Goodfellow et al. 2014, eq. 1: -log sigmoid(D(x)) - log(1 - sigmoid(D(G(z)))), on logits
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def generator_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    if kind == "hinge":
        return -fake.mean()
    # the non-saturating loss of Goodfellow et al. 2014, sec. 3: maximise log D(G(z))
    return F.softplus(-fake).mean()
