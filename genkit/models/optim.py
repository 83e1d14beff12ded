"""Building optimizers from their `_partial_` configs, with the fast paths the device offers."""

import inspect
from collections.abc import Callable, Iterable

import torch


def build_optimizer(optimizer: Callable, params: Iterable) -> torch.optim.Optimizer:
    """optimizer(params=params), fused where the optimizer supports it (Adam, AdamW, on CUDA and
    on CPUs): one kernel for all parameters instead of several per tensor (the step time it saves:
    docs/benchmarks/performance.md, "The figures behind the code")."""
    params = [g for g in params if not isinstance(g, dict) or g["params"]]  # fine-tuning may empty a group
    first = params[0]["params"][0] if isinstance(params[0], dict) else params[0]
    kwargs = {}
    target = getattr(optimizer, "func", optimizer)
    if (
        first.device.type in ("cuda", "cpu")
        and first.dtype.is_floating_point
        and "fused" in inspect.signature(target).parameters
        and "fused" not in getattr(optimizer, "keywords", {})
    ):
        kwargs["fused"] = True
    return optimizer(params=params, **kwargs)
