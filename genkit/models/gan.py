"""Generative adversarial network (Goodfellow et al. 2014), trained with manual optimisation.

`conditional=True` makes it a class-conditional GAN: the generator draws an image of a given
class and the discriminator judges image and class together (its networks do the conditioning,
genkit/models/nets/conditioning.py); fakes are drawn with the labels of the real batch."""

import copy
from collections.abc import Callable

import torch
from torch import nn

from genkit.models.base import GenerativeModel, class_count
from genkit.models.gan_losses import LOSSES, discriminator_loss, generator_loss
from genkit.models.nets.conditioning import conditioned
from genkit.models.optim import build_optimizer
from genkit.models.reference.gan_loop import RawGANLoop


def _no_closure() -> None:
    return None


class GAN(GenerativeModel):
    # adapters on the generator; the discriminator keeps training in full to judge its new images
    lora_targets = ("generator.*",)
    lora_trains_fully = ("discriminator.*",)
    must_train = ("generator", "discriminator")
    # each backward pass reaches only one network: under DDP the other's gradients never arrive
    ddp_find_unused_parameters = True
    # no validation loss of a GAN measures its samples; ValidationFID's val/fid_clf does
    checkpoint_metric = None
    optimizer_names = ("generator", "discriminator")

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        optimizer_g: Callable,
        optimizer_d: Callable,
        loss: str = "non_saturating",
        conditional: bool = False,
    ):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"model.loss must be one of {LOSSES}, got {loss!r}")
        self.automatic_optimization = False
        self.generator, self.discriminator = generator, discriminator
        self.optimizer_g, self.optimizer_d = optimizer_g, optimizer_d
        self.loss = loss
        self.latent_dim = generator.latent_dim
        self.conditional = conditional
        self.num_classes = class_count(conditional, generator=generator, discriminator=discriminator)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return conditioned(self.generator, z, labels)

    def _judge(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return conditioned(self.discriminator, x, labels)

    @torch.no_grad()
    def sample(
        self, n: int, *, generator: torch.Generator | None = None, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """n images (n, C, H, W) in [-1, 1]; pass a seeded generator for fixed noise. A conditional
        GAN draws one image per entry of `labels` (default: the classes in turn)."""
        labels = self.labels_to_draw(n, labels)
        z = torch.randn(n if labels is None else len(labels), self.latent_dim, generator=generator, device=self.device)
        return self(z, labels)

    def _losses(self, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        real_logits, fake_logits = self._judge(real, labels), self._judge(fake, labels)
        return {
            "d_loss": discriminator_loss(self.loss, real_logits, fake_logits),
            "d_real": torch.sigmoid(real_logits).mean(),
            "d_fake": torch.sigmoid(fake_logits).mean(),
        }

    def training_step(self, batch, batch_idx: int) -> None:
        real, labels = batch
        labels = labels if self.conditional else None
        opt_g, opt_d = self.optimizers()
        z = torch.randn(real.shape[0], self.latent_dim, device=self.device)
        fake = self(z, labels)

        d = self._losses(real, fake.detach(), labels)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d["d_loss"])
        # Lightning counts every LightningOptimizer.step() as a global step; stepping the
        # discriminator through the strategy keeps one step = one batch = one generator update.
        self.trainer.strategy.optimizer_step(opt_d.optimizer, closure=_no_closure)

        # the generator's step needs no gradients for the discriminator's weights
        self.toggle_optimizer(opt_g)
        g_loss = generator_loss(self.loss, self._judge(fake, labels))
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        self.log_dict({f"train/{k}": v for k, v in d.items()}, prog_bar=True)
        self.log("train/g_loss", g_loss, prog_bar=True)

    def _eval_step(self, stage: str, batch) -> None:
        real, labels = batch
        labels = labels if self.conditional else None
        fake = self.sample(real.shape[0], labels=labels)
        d = self._losses(real, fake, labels)
        d["g_loss"] = generator_loss(self.loss, self._judge(fake, labels))
        self.log_dict({f"{stage}/{k}": v for k, v in d.items()}, sync_dist=True)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step("val", batch)

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step("test", batch)

    def reference_loop(self, data, batch_size: int, device: torch.device, bf16: bool):
        if self.conditional:  # the hand-written loop is the unconditional GAN
            return None
        return RawGANLoop(
            data["train"].to(device),
            generator=copy.deepcopy(self.generator),
            discriminator=copy.deepcopy(self.discriminator),
            batch_size=batch_size,
            latent_dim=self.latent_dim,
            lr_g=self.optimizer_g.keywords["lr"],
            lr_d=self.optimizer_d.keywords["lr"],
            betas=tuple(self.optimizer_g.keywords.get("betas", (0.9, 0.999))),
            loss=self.loss,
            device=device,
            bf16=bf16,
        )

    def configure_optimizers(self):
        return [
            build_optimizer(self.optimizer_g, self.generator.parameters()),
            build_optimizer(self.optimizer_d, self.discriminator.parameters()),
        ]
