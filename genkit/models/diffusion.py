"""Denoising diffusion (Ho et al. 2020): the Gaussian process wraps a denoiser network; the
LightningModule trains it and keeps an EMA copy of its weights, which all sampling uses.

Samplers: ancestral DDPM over all timesteps, and DDIM (Song et al. 2021) over any number of
steps. Schedules: linear (Ho et al.) and cosine (Nichol & Dhariwal 2021). Objectives:
eps-prediction, or v-prediction (Salimans & Ho 2022).

`conditional=True` trains a class-conditional denoiser with classifier-free guidance (Ho &
Salimans 2022): labels are dropped to a null class with probability `cond_drop` during training,
and sampling mixes the conditional and unconditional predictions with weight `guidance`.
"""

import copy
import math
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from genkit.errors import GenkitError
from genkit.models.base import GenerativeModel, class_count
from genkit.models.optim import build_optimizer
from genkit.options import Option, number, one_of, whole_number


def beta_schedule(kind: str, timesteps: int) -> torch.Tensor:
    if kind == "linear":
        # Ho et al. 2020, sec. 4: beta from 1e-4 to 0.02 over 1000 steps (scaled for other T); capped
        # below 1 like the cosine schedule, or under ~50 steps the last betas pass 1 and x_t is NaN
        scale = 1000 / timesteps
        return torch.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=torch.float64).clamp(max=0.999)
    if kind == "cosine":
        # Nichol & Dhariwal 2021, eq. 17: alpha_bar(t) = cos^2(((t/T + s) / (1 + s)) * pi/2)
        s = 0.008
        t = torch.linspace(0, timesteps, timesteps + 1, dtype=torch.float64) / timesteps
        alpha_bar = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
        return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)
    raise ValueError(f"schedule must be linear or cosine, got {kind!r}")


class GaussianDiffusion(nn.Module):
    def __init__(self, net: nn.Module, *, timesteps: int = 1000, schedule: str = "linear", objective: str = "eps"):
        super().__init__()
        if objective not in ("eps", "v"):
            raise ValueError(f"objective must be eps or v, got {objective!r}")
        self.net, self.timesteps, self.objective = net, timesteps, objective
        betas = beta_schedule(schedule, timesteps)
        alpha_bar = torch.cumprod(1 - betas, dim=0)
        alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
        buffers = {
            "betas": betas,
            "alpha_bar": alpha_bar,
            "alpha_bar_prev": alpha_bar_prev,
            # q(x_{t-1} | x_t, x_0) (Ho et al. 2020, eq. 7)
            "posterior_var": betas * (1 - alpha_bar_prev) / (1 - alpha_bar),
            "posterior_c0": betas * alpha_bar_prev.sqrt() / (1 - alpha_bar),
            "posterior_ct": (1 - alpha_bar_prev) * (1 - betas).sqrt() / (1 - alpha_bar),
        }
        for name, value in buffers.items():
            self.register_buffer(name, value.float(), persistent=False)

    @staticmethod
    def _at(values: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return values[t].view(-1, 1, 1, 1)  # (B,) -> (B, 1, 1, 1) to broadcast over images

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps (Ho et al. 2020, eq. 4)."""
        ab = self._at(self.alpha_bar, t)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def forward(
        self,
        x0: torch.Tensor,
        generator: torch.Generator | None = None,
        net: nn.Module | None = None,
        labels: torch.Tensor | None = None,
    ):
        """The training loss: ||target - net(x_t, t)||^2 with t uniform (Ho et al. 2020, eq. 14);
        a conditional net also gets the labels."""
        net = net or self.net
        if labels is not None:
            net = partial(net, labels=labels)
        t = torch.randint(0, self.timesteps, (x0.shape[0],), device=x0.device, generator=generator)
        noise = torch.randn(x0.shape, device=x0.device, generator=generator)
        x_t = self.q_sample(x0, t, noise)
        if self.objective == "eps":
            target = noise
        else:  # v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x_0 (Salimans & Ho 2022, sec. 4)
            ab = self._at(self.alpha_bar, t)
            target = ab.sqrt() * noise - (1 - ab).sqrt() * x0
        return F.mse_loss(net(x_t, t).float(), target)

    def predict(self, net: Callable, x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_0, eps) predicted at x_t, with x_0 clipped to the data range [-1, 1]."""
        out = net(x_t, t).float()
        ab = self._at(self.alpha_bar, t)
        if self.objective == "eps":
            x0 = (x_t - (1 - ab).sqrt() * out) / ab.sqrt()
        else:
            x0 = ab.sqrt() * x_t - (1 - ab).sqrt() * out
        x0 = x0.clamp(-1, 1)
        eps = (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()
        return x0, eps

    @torch.no_grad()
    def ddpm_sample(self, net: Callable, shape, generator: torch.Generator | None = None) -> torch.Tensor:
        """Ancestral sampling through all timesteps (Ho et al. 2020, algorithm 2)."""
        device = self.betas.device
        x = torch.randn(shape, device=device, generator=generator)
        for i in reversed(range(self.timesteps)):
            t = torch.full((shape[0],), i, device=device, dtype=torch.long)
            x0, _ = self.predict(net, x, t)
            mean = self._at(self.posterior_c0, t) * x0 + self._at(self.posterior_ct, t) * x
            if i > 0:
                noise = torch.randn(shape, device=device, generator=generator)
                x = mean + self._at(self.posterior_var, t).sqrt() * noise
            else:
                x = mean
        return x

    @torch.no_grad()
    def ddim_sample(
        self, net: Callable, shape, steps: int = 50, eta: float = 0.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """DDIM over `steps` evenly spaced timesteps (Song et al. 2021, eq. 12); eta=0 is deterministic."""
        device = self.betas.device
        times = torch.linspace(self.timesteps - 1, 0, min(steps, self.timesteps), device=device).round().long()
        x = torch.randn(shape, device=device, generator=generator)
        for i, step in enumerate(times):
            t = step.expand(shape[0])
            x0, eps = self.predict(net, x, t)
            ab = self.alpha_bar[step]
            ab_prev = self.alpha_bar[times[i + 1]] if i + 1 < len(times) else torch.ones((), device=device)
            sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).sqrt()
            x = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma**2).sqrt() * eps
            if eta > 0 and i + 1 < len(times):
                x = x + sigma * torch.randn(shape, device=device, generator=generator)
        return x


# images per sampler call on a CPU (see Diffusion.sample)
CPU_SAMPLE_CHUNK = 64


def guided(net: nn.Module, x_t: torch.Tensor, t: torch.Tensor, *, labels: torch.Tensor, guidance: float):
    """Classifier-free guidance (Ho & Salimans 2022, eq. 6): (1 + w) f(x, c) - w f(x, null), from
    one batched call; w = 0 is the conditional prediction alone (one call, no null half)."""
    if guidance == 0:
        return net(x_t, t, labels)
    null = torch.full_like(labels, net.num_classes)
    conditional, unconditional = net(x_t.repeat(2, 1, 1, 1), t.repeat(2), torch.cat([labels, null])).chunk(2)
    return unconditional + (1 + guidance) * (conditional - unconditional)


# conditional models: the classifier-free guidance weight, for genkit sample and genkit eval alike
GUIDANCE = Option(
    None,
    "classifier-free guidance weight of a conditional model (null: the model's; 0: none)",
    number(lambda v: v >= 0, "a number of at least 0 (0: no classifier-free guidance)"),
)


class Diffusion(GenerativeModel):
    sample_options = {
        "steps": Option(None, "sampler steps (DDIM; null: the model's sample_steps)", whole_number(1)),
        "sampler": Option(None, "ddim or ddpm (all of the training steps; null: the model's)", one_of("ddim", "ddpm")),
        "eta": Option(0.0, "DDIM's noise (0: deterministic)", number(lambda v: v >= 0, "a number of at least 0")),
        "guidance": GUIDANCE,
    }
    test_options = {"guidance": GUIDANCE}

    @property
    def lora_targets(self) -> tuple[str, ...]:
        """The denoiser's own LoRA targets (its convolutions and attention projections), as names
        inside this model; the EMA copy follows (adapters_added)."""
        return tuple(f"process.net.{pattern}" for pattern in self.process.net.lora_targets)

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable,
        timesteps: int = 1000,
        schedule: str = "linear",
        objective: str = "eps",
        ema_decay: float = 0.999,
        sampler: str = "ddim",
        sample_steps: int = 50,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        eval_seed: int = 0,
        conditional: bool = False,
        cond_drop: float = 0.1,
        guidance: float = 1.0,
    ):
        super().__init__()
        if not 0 <= cond_drop < 1:
            raise GenkitError(f"model.cond_drop={cond_drop} must be in [0, 1): the share of labels dropped")
        if guidance < 0:
            raise GenkitError(f"model.guidance={guidance} must be at least 0 (0: no guidance)")
        if conditional and cond_drop == 0 and guidance > 0:
            raise GenkitError(
                f"model.guidance={guidance} needs the unconditional model, which is learnt only from dropped labels; "
                f"with model.cond_drop=0 none are dropped. Set model.cond_drop>0 (0.1 is usual) or model.guidance=0."
            )
        self.process = GaussianDiffusion(net, timesteps=timesteps, schedule=schedule, objective=objective)
        self.ema_net = copy.deepcopy(net).requires_grad_(False)
        self.optimizer = optimizer
        self.ema_decay = ema_decay
        self.sampler, self.sample_steps = sampler, sample_steps
        self.image_shape = tuple(image_shape)
        self.eval_seed = eval_seed
        self.conditional, self.cond_drop, self.guidance = conditional, cond_drop, guidance
        self.num_classes = class_count(conditional, denoiser=net)

    def adapters_added(self) -> None:
        """The EMA network becomes a copy of the adapted one, keeping its own averaged base weights
        (x.weight is now x.base_layer.weight) and starting its adapters where the live ones start."""
        averaged = self.ema_net.state_dict()
        self.ema_net = copy.deepcopy(self.process.net).requires_grad_(False)
        with torch.no_grad():
            for name, tensor in self.ema_net.state_dict().items():
                if "lora_" not in name:
                    tensor.copy_(averaged[name.replace(".base_layer.", ".")])

    def configure_test(self, options, device) -> dict:
        """`guidance` (default: the model's) for the images that eval generates."""
        self._check_guidance(options.get("guidance"))
        if not self.conditional:
            return {}
        if options.get("guidance") is not None:
            self.guidance = options["guidance"]
        return {"guidance": self.guidance}

    def _check_guidance(self, guidance: float | None) -> None:
        if guidance is not None and not self.conditional:
            raise GenkitError(
                f"guidance={guidance} needs a class-conditional model, and this one was trained without class "
                f"labels (model.conditional=false); drop guidance=, or train with model.conditional=true."
            )

    def _training_labels(self, labels: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor | None:
        """The batch's labels with a cond_drop share set to the null class (None if unconditional)."""
        if not self.conditional:
            return None
        drop = torch.rand(labels.shape, device=labels.device, generator=generator) < self.cond_drop
        return labels.masked_fill(drop, self.num_classes)

    def networks(self) -> dict[str, nn.Module]:
        # the denoisers, not the process around them (its forward draws the noise)
        return {"denoiser": self.process.net, "ema_denoiser": self.ema_net}

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, labels = batch
        loss = self.process(x, labels=self._training_labels(labels, None))
        self.log("train/loss", loss, prog_bar=True)
        return loss

    @torch.no_grad()
    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        # EMA with a warm-up, so early samples are not dominated by the random initialisation
        step = self.global_step
        decay = min(self.ema_decay, (1 + step) / (10 + step))
        # only what trains: a frozen weight keeps its averaged value (fine-tuning, genkit.training.finetune)
        pairs = [
            (e, p)
            for e, p in zip(self.ema_net.parameters(), self.process.net.parameters(), strict=True)
            if p.requires_grad
        ]
        torch._foreach_lerp_([e for e, _ in pairs], [p for _, p in pairs], 1 - decay)

    def validation_step(self, batch, batch_idx: int) -> None:
        # fixed timesteps and noise per batch: val/loss is comparable across validations
        self.log("val/loss", self._eval_loss(batch, batch_idx), prog_bar=True, sync_dist=True)

    def test_step(self, batch, batch_idx: int) -> None:
        self.log("test/loss", self._eval_loss(batch, batch_idx), sync_dist=True)

    def _eval_loss(self, batch, batch_idx: int) -> torch.Tensor:
        """The EMA denoiser's loss with the batch's own labels (none dropped)."""
        x, labels = batch
        g = torch.Generator(device=x.device).manual_seed(self.eval_seed + batch_idx)
        return self.process(x, generator=g, net=self.ema_net, labels=labels if self.conditional else None)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        steps: int | None = None,
        sampler: str | None = None,
        eta: float = 0.0,
        labels: torch.Tensor | None = None,
        guidance: float | None = None,
    ) -> torch.Tensor:
        """n images (n, C, H, W) in [-1, 1] from the EMA weights: DDIM with `steps` steps, or DDPM.
        A conditional model draws one image per entry of `labels` (default: the classes in turn),
        guided with weight `guidance` (default: the model's)."""
        sampler = sampler or self.sampler
        if sampler not in ("ddim", "ddpm"):
            raise ValueError(f"sampler must be ddim or ddpm, got {sampler!r}")
        self._check_guidance(guidance)
        labels = self.labels_to_draw(n, labels)
        if labels is not None:
            n = len(labels)
        guidance = self.guidance if guidance is None else guidance
        # on a CPU, chunks whose activations stay in cache: 500 images at once ran 2-3x slower than
        # chunks of 64 (cdiffusion_mnist_cpu, 2 cores); a GPU takes the whole batch
        chunk = n if self.device.type == "cuda" else CPU_SAMPLE_CHUNK
        out = []
        for start in range(0, n, chunk):
            size = min(chunk, n - start)
            net = self.ema_net
            if self.conditional:
                net = partial(guided, net, labels=labels[start : start + size], guidance=guidance)
            shape = (size, *self.image_shape)
            if sampler == "ddpm":
                out.append(self.process.ddpm_sample(net, shape, generator))
            else:
                out.append(self.process.ddim_sample(net, shape, steps or self.sample_steps, eta, generator))
        x = torch.cat(out)
        return x.clamp(-1, 1)

    def configure_optimizers(self):
        return build_optimizer(self.optimizer, self.process.net.parameters())
