"""Lightning's FSDP strategy as a trainer preset (configs/trainer/fsdp.yaml): models too large for
one GPU, their parameters, gradients and optimizer state sharded over the processes.

Lightning's FSDPStrategy takes the layers to wrap and to checkpoint as sets of classes, which a
YAML file cannot hold; this builds it from class paths. The layers are data a config names, so
only classes under genkit's own models (or ones the config's author imports by path themselves,
in their own config) are named here; a checkpoint never rebuilds the trainer.

Checkpoints are consolidated: `state_dict_type: full` gathers the whole model on rank 0, which
writes genkit's ordinary checkpoint file (same keys as an unsharded run: FSDP's and activation
checkpointing's wrappers strip their prefixes), so `genkit sample`, `eval` and `export` open it
on one device like any other.
"""

from collections.abc import Sequence

from hydra.utils import get_class
from lightning.pytorch.strategies import FSDPStrategy

from genkit.errors import GenkitError


def fsdp_strategy(
    *, layers: Sequence[str], accelerator: str, activation_checkpointing: bool = True, **kwargs
) -> FSDPStrategy:
    """FSDPStrategy that shards each of `layers` (class paths, e.g. a transformer block) as one
    unit and, with `activation_checkpointing`, recomputes their activations in the backward pass
    instead of keeping them (memory for about a third more compute). `accelerator` is the
    trainer's: Lightning runs FSDP on CUDA GPUs only, which is said here in one paragraph."""
    if accelerator not in ("gpu", "cuda", "auto"):
        raise GenkitError(
            f"trainer=fsdp cannot run with trainer.accelerator={accelerator}: Lightning's FSDP strategy runs on "
            'CUDA GPUs only (it stops with "The strategy `fsdp` requires a GPU accelerator"). On CPUs use '
            "trainer=ddp_cpu (each process holds the whole model)."
        )
    classes = {get_class(path) for path in layers}
    return FSDPStrategy(
        auto_wrap_policy=classes,
        activation_checkpointing_policy=classes if activation_checkpointing else None,
        **kwargs,
    )
