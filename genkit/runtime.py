"""Where genkit runs: the one place that picks the device and the precision for train, sample,
eval and bench.

bf16 autocast on CUDA GPUs, and on CPUs that multiply bf16 matrices much faster than fp32. Which
CPUs do is measured, not read from one CPUID bit: AMX tiles (Intel Xeon since Sapphire Rapids),
AVX512-BF16 (AMD Zen 4 and 5, Intel Cooper Lake), AVX-NE-CONVERT and Arm's BF16 speed bf16 up by
different amounts, and what oneDNN makes of a CPU with none of them is its own affair. So genkit
times a 768 x 768 matmul in each precision once per CPU (model, CPUID flags, torch version: ~0.06
s on 2 cores) and keeps the answer in ~/.cache/genkit/cpu_bf16.json (delete it to time again).
A timing is a better witness than a table of CPUs: it asks the CPU, this torch build and the
oneDNN kernels it picks, and it needs no update for the next ISA. What the probe has measured on
the CPUs genkit is developed on is in docs/benchmarks/performance.md ("The figures behind the
code"). Commands that run one model outside a training run (sample, eval) use the same rule.
"""

import contextlib
import datetime
import functools
import hashlib
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from genkit.atomic import write_text

# bf16 autocast pays when bf16 matmuls run this many times as fast as fp32 ones: it also converts
# activations, keeps attention and scored outputs in fp32, and a network is not all matmuls, so a
# step gains less than its matmuls do (docs/benchmarks/performance.md has the measured step times)
BF16_PAYS_AT = 1.5
# the probe: one square matmul the size of GPT-2's hidden layer, the best of a few tries of each
# precision, interleaved so that another process's load slows both alike
PROBE_SIZE = 768
PROBE_TRIES = 5


def uses_cuda(accelerator: str | None = "auto") -> bool:
    """Whether a run with this Lightning `accelerator` setting lands on a CUDA GPU."""
    return torch.cuda.is_available() and (accelerator or "auto") in ("auto", "gpu", "cuda")


@dataclass(frozen=True)
class CpuMatmulSpeed:
    """How fast this CPU multiplies matrices in fp32 and in bf16 (GFLOP/s), and when it was timed."""

    cpu: str
    fp32: float
    bf16: float
    measured: str

    @property
    def bf16_pays(self) -> bool:
        return self.bf16 >= BF16_PAYS_AT * self.fp32

    def describe(self) -> str:
        return (
            f"this CPU ({self.cpu}) multiplies bf16 matrices {self.bf16 / self.fp32:.1f}x as fast as fp32 "
            f"({self.bf16:.0f} against {self.fp32:.0f} GFLOP/s, a {PROBE_SIZE}x{PROBE_SIZE} matmul timed "
            f"{self.measured}); genkit autocasts to bf16 from {BF16_PAYS_AT}x"
        )


def cpu_identity() -> tuple[str, str]:
    """(the CPU's name, a key for its model, CPUID flags and torch version): machines that share
    a name may differ (a VM may say only "AMD EPYC", or hide AVX512-BF16)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, sep, value = line.partition(":")
            if not sep:
                if fields:  # the first processor's block is enough
                    break
                continue
            fields.setdefault(key.strip(), value.strip())
    except OSError:  # not Linux
        pass
    name = fields.get("model name") or platform.processor() or platform.machine()
    model = [fields.get(k, "") for k in ("vendor_id", "cpu family", "model", "stepping", "CPU implementer", "CPU part")]
    flags = fields.get("flags") or fields.get("Features") or ""
    digest = hashlib.sha256(" ".join(sorted(flags.split())).encode()).hexdigest()[:12]
    return name, f"{name} | {'/'.join(model)} | flags {digest} | torch {torch.__version__}"


def time_matmuls(size: int = PROBE_SIZE, tries: int = PROBE_TRIES) -> tuple[float, float]:
    """(fp32, bf16) GFLOP/s of a size x size matmul on this process's threads."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    pairs = {"fp32": (a, b), "bf16": (a.bfloat16(), b.bfloat16())}
    best = dict.fromkeys(pairs, float("inf"))
    for x, y in pairs.values():
        x @ y  # the first call sets up oneDNN's kernel
    for _ in range(tries):
        for name, (x, y) in pairs.items():
            start = time.perf_counter()
            x @ y
            best[name] = min(best[name], time.perf_counter() - start)
    return tuple(2 * size**3 / best[name] / 1e9 for name in ("fp32", "bf16"))


def _cache_file() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "genkit" / "cpu_bf16.json"


@functools.cache
def cpu_matmul_speed() -> CpuMatmulSpeed:
    """This CPU's matmul speeds: from the cache file, else timed now (~0.1 s) and cached."""
    name, key = cpu_identity()
    path = _cache_file()
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if isinstance(known.get(key), dict):
        try:
            return CpuMatmulSpeed(**known[key])
        except TypeError:  # written by another version of genkit: time again
            pass
    fp32, bf16 = time_matmuls()
    speed = CpuMatmulSpeed(name, round(fp32, 1), round(bf16, 1), datetime.date.today().isoformat())
    try:  # a cache that cannot be written only costs the probe again next time
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps({**known, key: asdict(speed)}, indent=1))
    except OSError:
        pass
    return speed


def cpu_bf16_pays() -> bool:
    """Whether bf16 autocast speeds training up on this CPU (measured: cpu_matmul_speed)."""
    return cpu_matmul_speed().bf16_pays


def precision_for(accelerator: str | None = "auto") -> str:
    """The precision genkit picks where trainer.precision is left to it."""
    if uses_cuda(accelerator):
        return "bf16-mixed"
    if accelerator == "mps":  # Apple GPUs: unmeasured, so 32-bit
        return "32-true"
    return "bf16-mixed" if cpu_bf16_pays() else "32-true"


def why_precision(accelerator: str | None = "auto") -> str:
    """Why precision_for chose what it did, for the run's log."""
    if uses_cuda(accelerator):
        return "bf16 on CUDA GPUs"
    if accelerator == "mps":
        return "32-bit on Apple GPUs, where genkit has not measured bf16"
    return cpu_matmul_speed().describe()


def autocasts_bf16(device_type: str) -> bool:
    """Whether genkit autocasts to bf16 on this kind of device ("cpu", "cuda")."""
    return precision_for(device_type) == "bf16-mixed"


def device_for(accelerator: str | None = "auto") -> torch.device:
    return torch.device("cuda" if uses_cuda(accelerator) else "cpu")


# the precisions a command that runs a loaded model (sample, eval, serve) takes: auto is genkit's
# choice for this device, the same rule and log line as a training run's
INFERENCE_PRECISIONS = ("auto", "32-true", "bf16-mixed")


def inference_precision(device: torch.device, asked: str = "auto") -> tuple[str, str]:
    """(the precision a loaded model runs in, why) on this device."""
    if asked != "auto":
        return asked, f"(precision={asked}, as asked)"
    return precision_for(device.type), f"(genkit's choice): {why_precision(device.type)}"


@contextlib.contextmanager
def inference_autocast(device: torch.device, precision: str):
    """bf16 autocast around a loaded model's work where the precision says so (it is per thread:
    genkit serve enters it in its model's worker thread)."""
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
        yield
