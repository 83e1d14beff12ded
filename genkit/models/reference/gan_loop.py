"""A hand-written PyTorch training loop for genkit's GAN: the reference genkit is measured against.

The same networks, losses and Adam settings as the GAN it is built from, but pytorch/examples'
dcgan loop: batches gathered from one uint8 tensor, no Lightning. `scripts/raw_gan_loop.py`
runs it on its own.
"""

import torch
from torch import nn

from genkit.models.gan_losses import discriminator_loss, generator_loss
from genkit.runtime import autocasts_bf16


class RawGANLoop:
    """One `step()` = one discriminator and one generator update on a batch, as in pytorch/examples."""

    def __init__(
        self,
        images: torch.Tensor,
        *,
        generator: nn.Module,
        discriminator: nn.Module,
        batch_size: int = 128,
        latent_dim: int = 64,
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        loss: str = "non_saturating",
        device="cpu",
        seed: int = 0,
        bf16: bool | None = None,
    ):
        """bf16: autocast as genkit would on this device (None), or as told."""
        torch.manual_seed(seed)
        self.images, self.batch_size, self.device = images, batch_size, device
        self.latent_dim, self.loss = latent_dim, loss
        self.G, self.D = generator.to(device).train(), discriminator.to(device).train()
        fused = torch.device(device).type == "cuda"
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=lr_g, betas=betas, fused=fused)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=lr_d, betas=betas, fused=fused)
        self.order, self.pos = torch.randperm(len(images), device=images.device), 0
        self.device_type = torch.device(device).type
        self.bf16 = autocasts_bf16(self.device_type) if bf16 is None else bf16

    def batch(self) -> torch.Tensor:
        if self.pos + self.batch_size > len(self.order):
            self.order, self.pos = torch.randperm(len(self.images), device=self.images.device), 0
        idx = self.order[self.pos : self.pos + self.batch_size]
        self.pos += self.batch_size
        return self.images[idx].to(self.device).float() / 127.5 - 1

    def step(self) -> tuple[float, float]:
        real = self.batch()
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.bf16):
            fake = self.G(torch.randn(real.shape[0], self.latent_dim, device=self.device))
            d_loss = discriminator_loss(self.loss, self.D(real), self.D(fake.detach()))
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.bf16):
            g_loss = generator_loss(self.loss, self.D(fake))
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        return d_loss.item(), g_loss.item()
