"""genkit.runtime: bf16 on CPUs by a timed matmul, once per CPU, and the precision configs that ask it."""

from pathlib import Path

import pytest

from genkit import runtime
from tests.helpers import TINY_IMAGE_RUN, make_cfg

# a 768 x 768 matmul on 2 cores (GFLOP/s, fp32 and bf16)
AVX512_BF16_NO_AMX = (200.0, 420.0)  # AMD EPYC (Zen 4): bf16 dot products, no AMX tiles (2026-12-06)
NEITHER = (200.0, 100.0)  # a CPU whose bf16 matmuls are slower than its fp32 ones


@pytest.fixture
def fake_cpu(monkeypatch, tmp_path):
    """Sets what the probe measures (and on which CPU); the cache lives in tmp_path. Returns the
    list of the timings taken."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    timed = []

    def use(speeds: tuple[float, float], cpu: str = "Some CPU") -> None:
        monkeypatch.setattr(runtime, "cpu_identity", lambda: (cpu, f"{cpu} | flags x | torch y"))
        monkeypatch.setattr(runtime, "time_matmuls", lambda: timed.append(cpu) or speeds)
        monkeypatch.setattr(runtime, "uses_cuda", lambda accelerator="auto": False)
        runtime.cpu_matmul_speed.cache_clear()

    yield use, timed
    runtime.cpu_matmul_speed.cache_clear()


def test_a_cpu_with_fast_bf16_matmuls_trains_in_bf16(tmp_path, fake_cpu):
    use, _ = fake_cpu
    use(AVX512_BF16_NO_AMX, "AMD EPYC")
    assert runtime.precision_for("cpu") == "bf16-mixed" and runtime.autocasts_bf16("cpu")
    assert make_cfg(tmp_path, "trainer=cpu").trainer.precision == "bf16-mixed"
    assert make_cfg(tmp_path, "trainer=ddp_cpu").trainer.precision == "bf16-mixed"
    why = runtime.why_precision("cpu")
    assert "AMD EPYC" in why and "2.1x as fast as fp32 (420 against 200 GFLOP/s" in why


def test_a_cpu_without_fast_bf16_matmuls_stays_in_32_bit(tmp_path, fake_cpu):
    use, _ = fake_cpu
    use(NEITHER)
    assert runtime.precision_for("cpu") == "32-true" and not runtime.autocasts_bf16("cpu")
    assert make_cfg(tmp_path, "trainer=cpu").trainer.precision == "32-true"
    assert "0.5x as fast as fp32" in runtime.why_precision("cpu")
    # GPUs do not ask the CPU: bf16 on CUDA (trainer=gpu says so), 32-bit on Apple's (unmeasured)
    assert make_cfg(tmp_path, "trainer=gpu").trainer.precision == "bf16-mixed"
    assert make_cfg(tmp_path, "trainer=mps").trainer.precision == "32-true"
    assert runtime.precision_for("mps") == "32-true"


def test_the_probe_runs_once_per_cpu_and_is_kept(tmp_path, fake_cpu):
    use, timed = fake_cpu
    use(AVX512_BF16_NO_AMX, "cpu A")
    runtime.precision_for("cpu")
    runtime.precision_for("cpu")
    use(NEITHER, "cpu A")  # a new process on the same CPU reads the cache file: no new timing
    assert runtime.precision_for("cpu") == "bf16-mixed"
    use(NEITHER, "cpu B")  # another CPU model (or CPUID flags, or torch version) is timed itself
    assert runtime.precision_for("cpu") == "32-true"
    assert timed == ["cpu A", "cpu B"]
    cache = Path(tmp_path / "cache" / "genkit" / "cpu_bf16.json").read_text()
    assert "cpu A" in cache and "cpu B" in cache


# a GAN on tiny MNIST look-alikes for 2 steps, its precision left to genkit
GAN_RUN = [o for o in TINY_IMAGE_RUN if not o.startswith("trainer.precision")] + ["trainer.max_steps=2"]


@pytest.mark.slow
@pytest.mark.parametrize("speeds,precision", [(AVX512_BF16_NO_AMX, "bf16-mixed"), (NEITHER, "32-true")])
def test_the_run_log_says_which_precision_and_why(tmp_path, fake_cpu, tiny_data_root, caplog, speeds, precision):
    from genkit.commands.train import train

    use, _ = fake_cpu
    use(speeds, "AMD EPYC")
    with caplog.at_level("INFO", logger="genkit"):
        train(make_cfg(tmp_path, f"data.root={tiny_data_root}", *GAN_RUN))
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Precision")]
    ratio = f"{speeds[1] / speeds[0]:.1f}x as fast as fp32 ({speeds[1]:.0f} against {speeds[0]:.0f} GFLOP/s"
    assert (
        line.startswith(f"Precision {precision} (genkit's choice): this CPU (AMD EPYC) multiplies bf16")
        and ratio in line
    )
    caplog.clear()
    with caplog.at_level("INFO", logger="genkit"):
        train(make_cfg(tmp_path / "set", f"data.root={tiny_data_root}", *GAN_RUN, "trainer.precision=32-true"))
    assert "Precision 32-true (trainer.precision=32-true, as configured)" in caplog.text


def test_the_probe_times_matmuls_quickly():
    """The real probe, as a first run on a new CPU pays it: a fraction of a second."""
    import time

    start = time.perf_counter()
    fp32, bf16 = runtime.time_matmuls()
    assert fp32 > 0 and bf16 > 0
    assert time.perf_counter() - start < 5  # ~0.1 s on 2 idle cores; generous for a loaded machine


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return set(next((line.split(":", 1)[1] for line in text.splitlines() if line.startswith("flags")), "").split())


@pytest.mark.skipif(
    not ({"avx512_bf16"} <= cpu_flags() and "amx_tile" not in cpu_flags()), reason="needs AVX512-BF16 without AMX"
)
def test_this_avx512_bf16_cpu_without_amx_measures_bf16_as_paying():
    fp32, bf16 = runtime.time_matmuls()
    assert bf16 >= runtime.BF16_PAYS_AT * fp32, (fp32, bf16)  # 2.1x on the AMD EPYC (Zen 4) of 2026-12-06
