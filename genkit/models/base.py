"""The contract of a genkit model family: what train, sample, eval and bench may ask of a model.

A family is one LightningModule subclass of `GenerativeModel` (its module) plus one config
(`configs/model/<name>.yaml`, or a `model/` folder of the user's own config dir). Generic code
calls only what is written here; it never asks `hasattr` of a model or branches on its name.

To add a family, subclass GenerativeModel and:

1. Train as any LightningModule: `training_step`, `validation_step`, `test_step` and
   `configure_optimizers`. Log `val/<metric>` and `test/<metric>`; name the metric that ranks
   checkpoints in `checkpoint_metric` (for early stopping and a best checkpoint).
2. Generate: `sample(n, *, generator=None, **options)` returns images (n, C, H, W) in [-1, 1]
   or token ids (n, T), on the model's device. `sample_options` declares the keyword options
   `genkit sample` may pass to it (genkit.options.Option: default, rule, help line; e.g. the language model:
   temperature, top_k; diffusion: steps): `genkit sample` takes them, checks them and lists them
   in its --help from this one declaration.
3. Ask the data for inputs through one hook: `data_inputs(options)` names what `sample` needs
   from the data set for these options (`prompt_ids`, `images`); the data module makes them
   (`GenkitDataModule.sample_input`) and they arrive as keyword arguments of `sample`.
4. Declare `modality` ("images" or "text"): which data sets it can train on.
5. List its networks in `networks()`; `compile_networks()` (trainer.compile=true) compiles
   each of them in place, so checkpoints keep plain parameter names. Override only to compile
   finer pieces (the language model compiles each transformer block).
6. Evaluation options: `test_options` declares the options of `genkit eval` that concern this
   family (the VAE's `nll_samples`); `configure_test(options, device)` applies them and returns
   what it used, for the report.
7. Speed: `flops_per_step(batch_size)` (training FLOPs, for MFU in `genkit bench`) and
   `reference_loop(data, batch_size, device, bf16)`, a hand-written PyTorch loop of the same
   model, in the run's precision, that `genkit bench compare=true` times against; both
   optional (None).
8. Distributed: set `ddp_find_unused_parameters = True` if a backward pass leaves some
   parameters without gradients (the GAN: each loss reaches one network).
9. Classes: a model built with `conditional=True` generates by class. It reads the labels of its
   training batches, asks the data for `labels` to generate (the default `data_inputs`), and
   takes them as `sample(n, labels=...)`: a (n,) tensor of class indices. `class_count` checks
   that its networks were built for the data's classes.
"""

from collections.abc import Mapping
from typing import Any, ClassVar

import lightning as L
import torch
from lightning.pytorch.plugins.precision import Precision
from lightning.pytorch.utilities import GradClipAlgorithmType
from torch import nn

from genkit.errors import GenkitError
from genkit.options import Option


class GenerativeModel(L.LightningModule):
    #: "images" (batches of (images, labels)) or "text" (batches of (ids, next ids))
    modality: ClassVar[str] = "images"
    #: keyword options of `sample` that `genkit sample` and the sample-grid callback pass on
    sample_options: ClassVar[dict[str, Option]] = {}
    #: the validation metric that ranks checkpoints, and whether lower or higher is better
    checkpoint_metric: ClassVar[tuple[str, str] | None] = ("val/loss", "min")
    #: names of the optimizers configure_optimizers returns, in order (learning rates log as lr/<name>)
    optimizer_names: ClassVar[tuple[str, ...]] = ()
    #: options of `genkit eval` that this family reads in configure_test
    test_options: ClassVar[dict[str, Option]] = {}
    #: set when a backward pass leaves parameters without gradients (DDP must then look for them)
    ddp_find_unused_parameters: ClassVar[bool] = False
    #: generates by class (set from the config's `conditional`), and how many classes
    conditional: bool = False
    num_classes: int = 0
    #: fine-tuning with LoRA (genkit.training.finetune): the layers that get adapters unless
    #: finetune.lora.targets names others (globs of module names), and parameters that still
    #: train in full beside the adapters
    lora_targets: ClassVar[tuple[str, ...]] = ()
    lora_trains_fully: ClassVar[tuple[str, ...]] = ()
    #: networks that each need something to train (a GAN's two players step in turn)
    must_train: ClassVar[tuple[str, ...]] = ()

    def sample(self, n: int, *, generator: torch.Generator | None = None, **options: Any) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define sample(n, *, generator=None, **options)")

    def data_inputs(self, options: Mapping[str, Any]) -> tuple[str, ...]:
        """The inputs `sample` needs from the data set for these options: the class labels to
        generate for a conditional model, nothing otherwise."""
        return ("labels",) if self.conditional else ()

    def labels_to_draw(self, n: int, labels: torch.Tensor | None) -> torch.Tensor | None:
        """The class of each sample a conditional model draws: `labels` as given, else the classes
        in turn for n samples; None for an unconditional model."""
        if not self.conditional:
            return None
        return balanced_labels(n, self.num_classes, self.device) if labels is None else labels.to(self.device)

    def networks(self) -> dict[str, nn.Module]:
        """The trainable networks by name: compiled by compile_networks()."""
        return {name: module for name, module in self.named_children() if any(True for _ in module.parameters())}

    def compile_networks(self) -> None:
        """torch.compile every network in place (state_dict keys do not change)."""
        for network in self.networks().values():
            network.compile()

    def planned_steps(self) -> int:
        """The optimizer steps the run will take (Lightning's estimate), e.g. for an LR schedule:
        call this, not trainer.estimated_stepping_batches, from configure_optimizers.

        To count them with max_epochs set, Lightning builds the training loader while the optimizers
        are configured, before a resumed run's checkpoint is restored, and keeps it: the loader's
        saved position (genkit.data.batching, genkit.data.shards) would then never be loaded, and a
        run resumed mid-epoch would start its epoch again. The loader built for counting is dropped,
        so that fit builds it again after the restore and loads its position into it."""
        trainer = self.trainer
        fit_loop = trainer.fit_loop
        built_here = fit_loop._combined_loader is None
        total = trainer.estimated_stepping_batches
        if built_here and fit_loop._combined_loader is not None:
            fit_loop._combined_loader = None
        return int(total)

    def train(self, mode: bool = True):
        """As nn.Module.train, but batch norms that fine-tuning froze keep their running statistics
        (genkit.training.finetune sets frozen_norms): a frozen layer computes exactly what it did."""
        super().train(mode)
        if mode:
            for norm in getattr(self, "frozen_norms", ()):
                norm.eval()
        return self

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """trainer.gradient_clip_val, also for fused optimizers under bf16 autocast. Lightning
        refuses to clip them under any mixed precision, because under fp16 they unscale the
        gradients inside their step; bf16 scales nothing, so they clip as in 32-bit."""
        plugin = self.trainer.precision_plugin
        if gradient_clip_val and getattr(plugin, "scaler", False) is None:
            algorithm = GradClipAlgorithmType(gradient_clip_algorithm or GradClipAlgorithmType.NORM)
            Precision.clip_gradients(plugin, optimizer, gradient_clip_val, algorithm)
            return
        super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def adapt_starting_weights(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A starting run's weights (model.init_from), made to fit this model where the family
        knows how (a GPT with a shorter context keeps the first positions)."""
        return state

    def adapters_added(self) -> None:
        """Called once LoRA adapters are in place (a copy of a network, e.g. an EMA, follows)."""

    def configure_test(self, options: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
        """Apply `genkit eval` options before the test loop; returns the ones used (for eval.json)."""
        return {}

    def flops_per_step(self, batch_size: int) -> float | None:
        """Training FLOPs of one optimiser step on a global batch, for MFU; None if unknown."""
        return None

    def reference_loop(self, data: Mapping[str, torch.Tensor], batch_size: int, device: torch.device, bf16: bool):
        """A hand-written loop with a `step()` method training the same model, or None.

        `data` is the data module's `reference_data()`: whole splits as tensors; `bf16`: whether
        the genkit run autocasts to bf16 (trainer.precision), so the loop does the same."""
        return None


def class_count(conditional: bool, **networks: nn.Module) -> int:
    """The number of classes a conditional model's networks were built for (0 when unconditional).

    The network configs take `num_classes` from the data when `model.conditional=true`; a data set
    without labels, or a network that cannot condition, is refused here in one paragraph."""
    counts = {name: getattr(net, "num_classes", 0) for name, net in networks.items()}
    if not conditional:
        built = [f"model.{name}.num_classes={k}" for name, k in counts.items() if k]
        if built:
            raise GenkitError(
                f"{', '.join(built)} builds a class-conditional network, but the model is unconditional; set "
                f"model.conditional=true (the networks then take the data's classes) instead of num_classes."
            )
        return 0
    if len(set(counts.values())) != 1 or 0 in counts.values():
        raise GenkitError(
            "model.conditional=true needs class labels and networks that condition on them, but the networks "
            f"were built for {', '.join(f'{n}: {k} classes' for n, k in counts.items())}. Use labelled data "
            "(its config sets data.num_classes, e.g. data=mnist) and networks that take num_classes "
            "(genkit's own all do), or drop model.conditional=true."
        )
    return next(iter(counts.values()))


def balanced_labels(n: int, num_classes: int, device=None) -> torch.Tensor:
    """n class labels, every class as often as n allows: 0, 1, ..., K-1, 0, 1, ..."""
    return torch.arange(n, device=device) % num_classes


def sample_inputs(model: GenerativeModel, datamodule, n: int, options: Mapping[str, Any]) -> dict[str, Any]:
    """What the data set hands the model to generate n samples with these options."""
    return {name: datamodule.sample_input(name, n, options) for name in model.data_inputs(options)}


def sample_from(
    model: GenerativeModel,
    datamodule,
    n: int,
    generator: torch.Generator | None,
    options: Mapping[str, Any],
    inputs: Mapping[str, Any] | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """n samples from a model, with the sample options it declares and the data inputs it asks for
    (made here unless given); returns the samples and those inputs (e.g. the labels asked for)."""
    kwargs = {k: options[k] for k in model.sample_options if options.get(k) is not None}
    inputs = dict(sample_inputs(model, datamodule, n, options) if inputs is None else inputs)
    return model.sample(n, generator=generator, **kwargs, **inputs), inputs
