"""Where genkit runs: the one place that picks the device and the precision for train, sample,
eval and bench.

bf16 autocast on CUDA GPUs; plain fp32 on CPUs, where bf16 was measured ~6x slower (no bf16
units). Commands that run one model outside a training run (sample, eval) use the same rule.
"""

import torch


def uses_cuda(accelerator: str | None = "auto") -> bool:
    """Whether a run with this Lightning `accelerator` setting lands on a CUDA GPU."""
    return torch.cuda.is_available() and (accelerator or "auto") in ("auto", "gpu", "cuda")


def precision_for(accelerator: str | None = "auto") -> str:
    return "bf16-mixed" if uses_cuda(accelerator) else "32-true"


def device_for(accelerator: str | None = "auto") -> torch.device:
    return torch.device("cuda" if uses_cuda(accelerator) else "cpu")
