"""Variational autoencoder (Kingma & Welling 2014) with a Bernoulli likelihood on dynamically
binarised pixels, and the importance-sampled NLL bound of Burda et al. (2016). All in nats.

`conditional=True` makes it a conditional VAE (Sohn et al. 2015): encoder and decoder read the
class label, its bound is on log p(x | y), and it generates by class from the prior."""

import logging
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric

from genkit.errors import GenkitError
from genkit.models.base import GenerativeModel, class_count
from genkit.models.nets.conditioning import conditioned
from genkit.models.optim import build_optimizer
from genkit.options import Option, Rule, one_of, whole_number

log = logging.getLogger("genkit")

LOG_2PI = math.log(2 * math.pi)
# importance samples for the test NLL on a CPU when the eval asks for `auto`: the model's 1000
# take about half an hour over the 10k MNIST test images on two cores
CPU_NLL_SAMPLES = 100


def binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Images in [-1, 1] -> pixels drawn as Bernoulli((x + 1) / 2): dynamic binarisation."""
    p = ((x + 1) / 2).clamp(0, 1)
    return torch.bernoulli(p, generator=generator)


def gaussian_log_prob(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mean, exp(logvar)), summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mean) ** 2 / logvar.exp()).sum(-1)


def nll_samples(requested: int | str | None, model_default: int, device: str) -> int:
    """Importance samples for the test NLL. `auto` keeps the model's own number on a GPU and
    caps it at CPU_NLL_SAMPLES on a CPU; the number used is part of the eval report."""
    if requested in (None, "auto"):
        if device == "cpu" and model_default > CPU_NLL_SAMPLES:
            log.info(
                "test NLL with %d importance samples on CPU (the model's %d take long here; "
                "pass nll_samples=%d for them)",
                CPU_NLL_SAMPLES,
                model_default,
                model_default,
            )
            return CPU_NLL_SAMPLES
        return model_default
    if not isinstance(requested, int) or isinstance(requested, bool) or requested < 0:
        raise GenkitError(f"nll_samples={requested!r} must be a whole number of importance samples, or auto")
    return requested


class VAE(GenerativeModel):
    sample_options = {
        "mode": Option(
            "prior",
            "prior, reconstruct (validation images beside their reconstructions) or interpolate",
            one_of("prior", "reconstruct", "interpolate"),
        ),
        "steps": Option(None, "points per interpolation (mode=interpolate)", whole_number(1)),
    }
    lora_targets = ("encoder.*", "decoder.*")
    test_options = {
        "nll_samples": Option(
            "auto",
            "importance samples for test/nll (auto: the model's test_nll_samples, at most 100 on a CPU)",
            Rule(lambda v: v == "auto" or whole_number(1).test(v), "auto or a whole number of at least 1"),
        )
    }
    # val/loss is the negative ELBO of the validation images, a bound on their NLL
    checkpoint_metric = ("val/loss", "min")

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        optimizer: Callable,
        kl_warmup_steps: int = 0,
        val_nll_samples: int = 0,
        test_nll_samples: int = 1000,
        eval_seed: int = 0,
        conditional: bool = False,
    ):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.conditional = conditional
        self.num_classes = class_count(conditional, encoder=encoder, decoder=decoder)
        self.optimizer = optimizer
        self.latent_dim = encoder.latent_dim
        self.kl_warmup_steps = kl_warmup_steps
        self.nll_samples = {"val": val_nll_samples, "test": test_nll_samples}
        self.eval_seed = eval_seed
        self.pixels = 1
        self.metrics = nn.ModuleDict({f"{s}_{m}": MeanMetric() for s in ("val", "test") for m in ("elbo", "nll")})

    def configure_test(self, options, device) -> dict:
        """`nll_samples` (default auto) importance samples for test/nll."""
        self.nll_samples["test"] = nll_samples(options.get("nll_samples"), self.nll_samples["test"], device.type)
        return {"nll_samples": self.nll_samples["test"]}

    def data_inputs(self, options) -> tuple[str, ...]:
        # reconstructions and interpolations start from real images (and, if conditional, their labels)
        if options.get("mode", "prior") != "prior":
            return ("images", "image_labels") if self.conditional else ("images",)
        return super().data_inputs(options)

    def _encode(self, x: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        return conditioned(self.encoder, x, labels)

    def _logits(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return conditioned(self.decoder, z, labels)

    # ---- the bound ---------------------------------------------------------------------------

    def elbo(
        self, x_bin: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-image ELBO, reconstruction log-likelihood and KL (B,) in nats; x_bin in {0, 1}."""
        mean, logvar = self._encode(x_bin * 2 - 1, labels)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()  # reparameterisation trick
        log_px = -F.binary_cross_entropy_with_logits(self._logits(z, labels), x_bin, reduction="none").flatten(1).sum(1)
        # Kingma & Welling 2014, appendix B: -KL(N(mean, var) || N(0, I)) in closed form
        kl = -0.5 * (1 + logvar - mean**2 - logvar.exp()).sum(1)
        return log_px - kl, log_px, kl

    @torch.no_grad()
    def importance_nll(
        self, x_bin: torch.Tensor, k: int, labels: torch.Tensor | None = None, max_decoded: int = 8192
    ) -> torch.Tensor:
        """-log p(x) (B,) estimated with k importance samples from q(z|x) (Burda et al. 2016, eq. 8):
        log p(x) ~ logsumexp_i [log p(x|z_i) + log p(z_i) - log q(z_i|x)] - log k (given y if conditional)."""
        mean, logvar = self._encode(x_bin * 2 - 1, labels)
        # decode at most max_decoded images at once: bounded memory, and they stay in cache on CPUs
        chunk = max(1, max_decoded // len(x_bin))
        log_w = []
        for start in range(0, k, chunk):
            m = min(chunk, k - start)
            z = mean + torch.randn(m, *mean.shape, device=mean.device) * (0.5 * logvar).exp()  # (m, B, D)
            repeated = None if labels is None else labels.repeat(m)  # z.flatten(0, 1) is sample-major
            logits = self._logits(z.flatten(0, 1), repeated).view(m, *x_bin.shape)
            log_px = -F.binary_cross_entropy_with_logits(logits, x_bin.expand_as(logits), reduction="none")
            log_pz = -0.5 * (LOG_2PI + z**2).sum(-1)
            log_w.append(log_px.flatten(2).sum(-1) + log_pz - gaussian_log_prob(z, mean, logvar))
        return -(torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k))

    # ---- training ------------------------------------------------------------------------------

    def kl_weight(self) -> float:
        if self.kl_warmup_steps <= 0:
            return 1.0
        return min(1.0, self.global_step / self.kl_warmup_steps)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, labels = batch
        _, log_px, kl = self.elbo(binarize(x), labels if self.conditional else None)
        loss = -(log_px - self.kl_weight() * kl).mean()
        self.log_dict({"train/loss": loss, "train/elbo": (log_px - kl).mean(), "train/kl": kl.mean()}, prog_bar=True)
        return loss

    def _eval_step(self, stage: str, batch, batch_idx: int) -> None:
        x, labels = batch
        labels = labels if self.conditional else None
        # a fixed binarisation per batch, so every evaluation scores the same binary images
        g = torch.Generator(device=x.device).manual_seed(self.eval_seed + batch_idx)
        x_bin = binarize(x, g)
        elbo, _, _ = self.elbo(x_bin, labels)
        self.pixels = x_bin[0].numel()
        self.metrics[f"{stage}_elbo"].update(elbo)
        if self.nll_samples[stage] > 0:
            self.metrics[f"{stage}_nll"].update(self.importance_nll(x_bin, self.nll_samples[stage], labels))

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step("val", batch, batch_idx)

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step("test", batch, batch_idx)

    def _log_eval(self, stage: str) -> None:
        elbo = self.metrics[f"{stage}_elbo"].compute()
        out = {f"{stage}/elbo": elbo, f"{stage}/loss": -elbo}
        if self.nll_samples[stage] > 0:
            nll = self.metrics[f"{stage}_nll"].compute()
            out[f"{stage}/nll"] = nll
            out[f"{stage}/bpd"] = nll / (self.pixels * math.log(2))  # bits per dimension
        for metric in self.metrics.values():
            metric.reset()
        self.log_dict(out, prog_bar=stage == "val")

    def on_validation_epoch_end(self) -> None:
        self._log_eval("val")

    def on_test_epoch_end(self) -> None:
        self._log_eval("test")

    # ---- generation ----------------------------------------------------------------------------

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        mode: str = "prior",
        images: torch.Tensor | None = None,
        steps: int = 8,
        labels: torch.Tensor | None = None,
        image_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Images in [-1, 1] (pixel probabilities, mapped): `prior` draws z ~ N(0, I) (a conditional
        VAE: one image per entry of `labels`, default the classes in turn); `reconstruct` shows each
        of n/2 images beside its reconstruction; `interpolate` decodes `steps` points on the line
        between the latent means of image pairs (one row per pair; a conditional VAE keeps the class
        of each pair's first image)."""
        if mode == "prior":
            labels = self.labels_to_draw(n, labels)
            z = torch.randn(
                n if labels is None else len(labels), self.latent_dim, generator=generator, device=self.device
            )
            return self._decode(z, labels)
        if images is None or (self.conditional and image_labels is None):
            raise ValueError(f"sample(mode={mode!r}) needs images" + (" and image_labels" if self.conditional else ""))
        images = images.to(self.device)
        image_labels = image_labels.to(self.device) if self.conditional else None
        # the encoder was trained on binarised pixels
        codes = binarize(images, generator) * 2 - 1
        if mode == "reconstruct":
            x = images[: max(n // 2, 1)]
            y = None if image_labels is None else image_labels[: len(x)]
            mean, _ = self._encode(codes[: len(x)], y)
            # (n/2, 2, C, H, W) -> original, reconstruction, original, ...
            return torch.stack([x, self._decode(mean, y)], dim=1).flatten(0, 1)
        if mode == "interpolate":
            pairs = max(n // steps, 1)
            y = None if image_labels is None else image_labels[: 2 * pairs]
            mean, _ = self._encode(codes[: 2 * pairs], y)
            a, b = mean[:pairs], mean[pairs : 2 * pairs]
            t = torch.linspace(0, 1, steps, device=self.device).view(1, steps, 1)
            z = a[:, None] + t * (b - a)[:, None]  # (pairs, steps, D)
            y = None if y is None else y[:pairs].repeat_interleave(steps)
            return self._decode(z.flatten(0, 1), y)
        raise ValueError(f"mode must be prior, reconstruct or interpolate, got {mode!r}")

    def _decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self._logits(z, labels)) * 2 - 1

    def configure_optimizers(self):
        return build_optimizer(self.optimizer, self.parameters())
