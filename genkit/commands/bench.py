"""`genkit bench`: steady-state training throughput of a configuration, optionally against the
hand-written PyTorch loop of its family (GenerativeModel.reference_loop) run in the same process.

It runs the real training step of the configured module on the configured data path (the same
parts `genkit train` builds), times `steps` steps after `warmup` steps, and reports steps/s,
samples/s or tokens/s, peak memory, and the model FLOPs utilisation (MFU): on CUDA against the
device's dense bf16 peak, on a CPU against its fastest matmul (fp32 or bf16) on the run's threads,
timed by genkit's precision probe.
"""

import logging
import resource
import statistics
import time
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig

from genkit.commands.command_options import check_values
from genkit.commands.report import write_report
from genkit.errors import GenkitError
from genkit.options import Option, one_of, whole_number
from genkit.runtime import time_matmuls
from genkit.training.build import build, build_trainer

log = logging.getLogger("genkit")

# bench's own options, beside the whole training config of `genkit train`
OPTIONS = {
    "steps": Option(50, "steady-state steps timed after the warm-up", whole_number(1)),
    "warmup": Option(10, "steps run before timing (compile, allocator and cudnn warm up there)", whole_number(0)),
    "rounds": Option(3, "rounds, alternating with the hand-written loop; the median counts", whole_number(1)),
    "compare": Option(
        "auto", "also time the hand-written loop of scripts/ (gan, gpt): auto, true, false", one_of("auto", True, False)
    ),
    "out": Option(None, "where to write the report (default: <run_dir>/bench.json)", shown="out=<file>"),
}

# dense bf16 tensor-core peaks (FLOP/s), by device name
PEAK_BF16 = {
    "H100": 989e12,
    "H200": 989e12,
    "GH200": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
    "A10": 125e12,
    "RTX 4090": 165e12,
    "RTX 3090": 71e12,
}


def peak_flops(device: torch.device) -> tuple[float, str] | None:
    """(FLOP/s, what that peak is) for the MFU, or None for a GPU genkit has no figure for. A CPU's
    is measured, not looked up: its fastest matmul on this process's threads (genkit's precision
    probe, a 768 x 768 product), since a datasheet peak counts cores and units a CPU share or a
    container may not give this process."""
    if device.type == "cpu":
        fp32, bf16 = time_matmuls()
        precision = "bf16" if bf16 > fp32 else "fp32"
        return max(fp32, bf16) * 1e9, f"this CPU's {precision} matmul on {torch.get_num_threads()} threads"
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    peak = next((peak for key, peak in PEAK_BF16.items() if key in name), None)
    return (peak, f"{name}'s dense bf16 peak") if peak else None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepClock(L.Callback):
    """Wall time from the end of step `warmup` to the end of the last step (synchronised once at
    each end, so the CPU may run ahead of the GPU as in training)."""

    def __init__(self, warmup: int):
        self.warmup = warmup
        self.start = self.end = 0.0
        self.steps = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        done = trainer.global_step
        if done == self.warmup:
            _sync(pl_module.device)
            self.start = time.perf_counter()
        elif done == trainer.max_steps:
            _sync(pl_module.device)
            self.end = time.perf_counter()
            self.steps = done - self.warmup


def time_genkit(cfg: DictConfig, parts, warmup: int, steps: int) -> float:
    clock = StepClock(warmup)
    trainer = build_trainer(
        cfg,
        model=parts.model,
        callbacks=[clock],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        max_steps=warmup + steps,
        max_epochs=-1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        val_check_interval=None,
        check_val_every_n_epoch=None,
    )
    trainer.fit(parts.model, datamodule=parts.datamodule)
    return clock.steps / (clock.end - clock.start)


def time_raw(loop, device: torch.device, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        loop.step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        loop.step()
    _sync(device)
    return steps / (time.perf_counter() - start)


def bench(cfg: DictConfig) -> dict:
    check_values("bench", cfg, OPTIONS)
    parts = build(cfg, with_trainer=False)
    model, datamodule = parts.model, parts.datamodule
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    genkit_rates, raw_rates = [], []
    loop = None
    for round_ in range(cfg.rounds):
        genkit_rates.append(time_genkit(cfg, parts, cfg.warmup, cfg.steps))
        device = model.device
        if cfg.compare and round_ == 0:
            bf16 = str(cfg.trainer.precision).startswith("bf16")
            loop = model.reference_loop(datamodule.reference_data(), cfg.data.batch_size, device, bf16)
            if loop is None and cfg.compare is True:
                kind = "class-conditional " if model.conditional else ""
                raise GenkitError(
                    f"{type(model).__name__} ({cfg.model._target_}) has no hand-written reference loop for a {kind}"
                    f"model to compare with; run with compare=auto or compare=false."
                )
            if loop is None:
                log.info("no hand-written reference loop for this model: timing genkit alone")
        if loop is not None:
            raw_rates.append(time_raw(loop, device, cfg.warmup, cfg.steps))
        log.info(
            "round %d: genkit %.2f steps/s%s",
            round_ + 1,
            genkit_rates[-1],
            f", raw loop {raw_rates[-1]:.2f} steps/s" if raw_rates else "",
        )

    steps_per_s = statistics.median(genkit_rates)
    items_per_step = cfg.data.batch_size * datamodule.items_per_sample()
    result = {
        "model": cfg.model._target_,
        "data": cfg.data.name,
        "device": str(model.device),
        "device_name": torch.cuda.get_device_name(model.device) if model.device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "precision": str(cfg.trainer.precision),
        "compile": bool(cfg.trainer.get("compile")),
        "batch_size": cfg.data.batch_size,
        "steps": cfg.steps,
        "warmup": cfg.warmup,
        "rounds": cfg.rounds,
        "steps_per_s": steps_per_s,
        f"{datamodule.throughput_unit}_per_s": steps_per_s * items_per_step,
        # a step is one optimiser step: accumulate_grad_batches loader batches
        "seconds_per_epoch": len(datamodule.train_dataloader())
        / (steps_per_s * datamodule.trainer.accumulate_grad_batches),
    }
    if model.device.type == "cuda":
        result["peak_memory_gb"] = torch.cuda.max_memory_allocated(model.device) / 2**30
    else:
        result["peak_rss_gb"] = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, rss0) / 2**20
    peak, flops = peak_flops(model.device), model.flops_per_step(cfg.data.batch_size)
    if peak and flops:
        result["mfu"] = flops * steps_per_s / peak[0]
        result["mfu_peak_gflops"], result["mfu_peak"] = peak[0] / 1e9, peak[1]
    if raw_rates:
        result["raw_steps_per_s"] = statistics.median(raw_rates)
        result["ratio_to_raw"] = steps_per_s / result["raw_steps_per_s"]
        result["rounds_genkit"], result["rounds_raw"] = genkit_rates, raw_rates
    write_report(result, Path(cfg.out or Path(cfg.paths.output_dir) / "bench.json"), "genkit bench")
    return result
