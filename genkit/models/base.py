"""The contract of a genkit model family: what train, sample, eval and bench may ask of a model.

A family is one LightningModule subclass of `GenerativeModel` (its module) plus one config
(`configs/model/<name>.yaml`, or a `model/` folder of the user's own config dir). Generic code
calls only what is written here; it never asks `hasattr` of a model or branches on its name.

To add a family, subclass GenerativeModel and:

1. Train as any LightningModule: `training_step`, `validation_step`, `test_step` and
   `configure_optimizers`. Log `val/<metric>` and `test/<metric>`; name the metric that ranks
   checkpoints in `checkpoint_metric` (for early stopping and a best checkpoint).
2. Generate: `sample(n, *, generator=None, **options)` returns images (n, C, H, W) in [-1, 1]
   or token ids (n, T), on the model's device. `sample_options` lists the keyword options
   `genkit sample` may pass to it (e.g. GPT: temperature, top_k; diffusion: steps).
3. Ask the data for inputs through one hook: `data_inputs(options)` names what `sample` needs
   from the data set for these options (`prompt_ids`, `images`); the data module makes them
   (`GenkitDataModule.sample_input`) and they arrive as keyword arguments of `sample`.
4. Declare `modality` ("images" or "text"): which data sets it can train on.
5. List its networks in `networks()`; `compile_networks()` (trainer.compile=true) compiles
   each of them in place, so checkpoints keep plain parameter names. Override only to compile
   finer pieces (GPT compiles each block).
6. Evaluation options: `test_options` names the options of `genkit eval` that concern this
   family (the VAE's `nll_samples`); `configure_test(options, device)` applies them and returns
   what it used, for the report.
7. Speed: `flops_per_step(batch_size)` (training FLOPs, for MFU in `genkit bench`) and
   `reference_loop(data, batch_size, device)`, a hand-written PyTorch loop of the same model
   that `genkit bench compare=true` times against; both optional (None).
8. Distributed: set `ddp_find_unused_parameters = True` if a backward pass leaves some
   parameters without gradients (the GAN: each loss reaches one network).
"""

from collections.abc import Mapping
from typing import Any, ClassVar

import lightning as L
import torch
from torch import nn


class GenerativeModel(L.LightningModule):
    #: "images" (batches of (images, labels)) or "text" (batches of (ids, next ids))
    modality: ClassVar[str] = "images"
    #: keyword options of `sample` that `genkit sample` and the sample-grid callback pass on
    sample_options: ClassVar[tuple[str, ...]] = ()
    #: the validation metric that ranks checkpoints, and whether lower or higher is better
    checkpoint_metric: ClassVar[tuple[str, str] | None] = ("val/loss", "min")
    #: names of the optimizers configure_optimizers returns, in order (learning rates log as lr/<name>)
    optimizer_names: ClassVar[tuple[str, ...]] = ()
    #: options of `genkit eval` that this family reads in configure_test
    test_options: ClassVar[tuple[str, ...]] = ()
    #: set when a backward pass leaves parameters without gradients (DDP must then look for them)
    ddp_find_unused_parameters: ClassVar[bool] = False

    def sample(self, n: int, *, generator: torch.Generator | None = None, **options: Any) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define sample(n, *, generator=None, **options)")

    def data_inputs(self, options: Mapping[str, Any]) -> tuple[str, ...]:
        """The inputs `sample` needs from the data set for these options (none by default)."""
        return ()

    def networks(self) -> dict[str, nn.Module]:
        """The trainable networks by name: compiled by compile_networks()."""
        return {name: module for name, module in self.named_children() if any(True for _ in module.parameters())}

    def compile_networks(self) -> None:
        """torch.compile every network in place (state_dict keys do not change)."""
        for network in self.networks().values():
            network.compile()

    def configure_test(self, options: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
        """Apply `genkit eval` options before the test loop; returns the ones used (for eval.json)."""
        return {}

    def flops_per_step(self, batch_size: int) -> float | None:
        """Training FLOPs of one optimiser step on a global batch, for MFU; None if unknown."""
        return None

    def reference_loop(self, data: Mapping[str, torch.Tensor], batch_size: int, device: torch.device):
        """A hand-written loop with a `step()` method training the same model, or None.

        `data` is the data module's `reference_data()`: whole splits as tensors."""
        return None


def sample_from(
    model: GenerativeModel, datamodule, n: int, generator: torch.Generator | None, options: Mapping[str, Any]
) -> torch.Tensor:
    """n samples from a model, with the sample options it declares and the data inputs it asks for."""
    kwargs = {k: options[k] for k in model.sample_options if options.get(k) is not None}
    for name in model.data_inputs(options):
        kwargs[name] = datamodule.sample_input(name, n, options)
    return model.sample(n, generator=generator, **kwargs)
