"""Where genkit runs: the one place that picks the device and the precision for train, sample,
eval and bench.

bf16 autocast on CUDA GPUs, and on CPUs with AMX tiles (Intel Xeon since Sapphire Rapids), whose
bf16 matrix units multiply ~4x faster than fp32 (a 768x768 matmul on 2 cores: 1284 against 341
GFLOP/s); plain fp32 on other CPUs, which have no bf16 matrix units. Commands that run one model
outside a training run (sample, eval) use the same rule.
"""

import torch


def uses_cuda(accelerator: str | None = "auto") -> bool:
    """Whether a run with this Lightning `accelerator` setting lands on a CUDA GPU."""
    return torch.cuda.is_available() and (accelerator or "auto") in ("auto", "gpu", "cuda")


def cpu_has_bf16_matmul() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AMX tiles), so bf16 autocast pays."""
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)  # torch's own probe (CPUID and OS support)
    return bool(amx and amx())


def precision_for(accelerator: str | None = "auto") -> str:
    if uses_cuda(accelerator) or cpu_has_bf16_matmul():
        return "bf16-mixed"
    return "32-true"


def autocasts_bf16(device_type: str) -> bool:
    """Whether genkit autocasts to bf16 on this kind of device ("cpu", "cuda")."""
    return precision_for(device_type) == "bf16-mixed"


def device_for(accelerator: str | None = "auto") -> torch.device:
    return torch.device("cuda" if uses_cuda(accelerator) else "cpu")
