"""Test helpers: composed configs, tiny synthetic data sets, the CLI in a subprocess."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from genkit.data.idx import write_idx
from genkit.training.config import compose_config

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GENKIT_DATA_DIR") or REPO.parent / "shared" / "data").resolve()


def needs_shared(folder: str):
    """Skip unless the shared copy of a data set exists (it does on genkit's build machines and CI)."""
    path = SHARED_DATA / folder
    return pytest.mark.skipif(not path.is_dir(), reason=f"{path} is absent: real-data tests need it")


def make_cfg(tmp_path: Path, *overrides: str, config_name: str = "train") -> DictConfig:
    """Compose a config as the CLI would, with the run directory inside tmp_path."""
    return compose_config(config_name, list(overrides), tmp_path)


def write_tiny_image_set(folder: Path, n_train: int = 96, n_test: int = 32, seed: int = 0) -> Path:
    """MNIST-format files with random 28x28 blobs, in the official file names."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = (rng.random((n, 28, 28)) > 0.7).astype(np.uint8) * 255
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n).astype(np.uint8))
    return folder


# overrides that make any image run tiny and quick
TINY_IMAGE_RUN = (
    "data.val_size=32",
    "data.batch_size=16",
    "data.eval_batch_size=16",
    "trainer.max_steps=4",
    "trainer.max_epochs=1",
    "trainer.accelerator=cpu",
    "trainer.precision=32-true",
)


def run_cli(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `genkit <args>` as a user would, capturing its output.

    Through the installed console script, not `python -m genkit.cli`: under `-m` the module is
    __main__, which pickles differently into SLURM jobs and relaunches differently under DDP."""
    full_env = {**os.environ, "GENKIT_DATA_DIR": str(SHARED_DATA), **(env or {})}
    script = Path(sys.executable).with_name("genkit")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "genkit.cli"]
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class BatchRecorder:
    """A callback that appends a fingerprint of every training batch to a file."""

    def __new__(cls, path: str):
        import lightning as L

        class _Recorder(L.Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                with open(path, "a") as f:
                    f.write(f"{trainer.global_step} {float(batch[0].float().sum()):.3f}\n")

        return _Recorder()


def assert_resumed_run_draws_the_batches_of_a_straight_one(tmp_path: Path, overrides, stop: int, steps: int) -> Path:
    """Train `steps` steps straight through, and again stopped after `stop` and resumed: both runs
    must train on the same batches (tests.helpers.BatchRecorder). The resumed run's directory."""
    from genkit.commands.train import train

    record = "+callbacks.recorder={{_target_: tests.helpers.BatchRecorder, path: {}}}"
    straight, resumed = tmp_path / "straight.txt", tmp_path / "resumed.txt"
    train(make_cfg(tmp_path / "a", *overrides, f"trainer.max_steps={steps}", record.format(straight)))
    for until in (stop, steps):
        train(make_cfg(tmp_path / "b", *overrides, f"trainer.max_steps={until}", record.format(resumed)))
    assert resumed.read_text().splitlines() == straight.read_text().splitlines()
    assert len(straight.read_text().splitlines()) == steps
    return tmp_path / "b" / "outputs" / "run"


class RowRecorder:
    """A callback that appends each training row (its token ids or pixel sum) and the process's
    rank to a file: which items each DDP process trained on."""

    def __new__(cls, path: str):
        import lightning as L

        class _Recorder(L.Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                with open(path, "a") as f:
                    for row in batch[0].flatten(1).tolist():
                        f.write(f"{trainer.global_rank} {' '.join(str(v) for v in row)}\n")

        return _Recorder()


class PoisonWeights:
    """A callback that puts a NaN into the model's weights at a given step."""

    def __new__(cls, at_step: int):
        import lightning as L
        import torch

        class _Poison(L.Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                if trainer.global_step == at_step:
                    with torch.no_grad():
                        next(pl_module.parameters()).fill_(float("nan"))

        return _Poison()


def wait_for(predicate, timeout: float, interval: float = 0.2) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def tiny_text_run(tmp_path: Path, lines: int = 300) -> list[str]:
    """Overrides for a 1-layer GPT on a small corpus written into tmp_path: seconds per run."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"line {i % 37} of a small corpus for quick runs" for i in range(lines)))
    return [
        "model=lm",
        "data=text",
        f"data.path={corpus}",
        "data.vocab_size=300",
        "data.block_size=16",
        "data.batch_size=8",
        f"data.cache_dir={tmp_path / 'cache'}",
        "model.net.n_layer=1",
        "trainer.accelerator=cpu",
        "trainer.precision=32-true",
    ]


def cli_in_process(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`genkit <args>` through genkit.cli.main in this process: the same code path as run_cli for
    commands that stop on bad input, without a second of start-up per call."""
    import contextlib
    import io

    from genkit import cli

    saved_argv, saved_cwd, saved_env = sys.argv, os.getcwd(), dict(os.environ)
    stdout, stderr = io.StringIO(), io.StringIO()
    GlobalHydra.instance().clear()
    code = 0
    try:
        os.chdir(cwd)
        os.environ.update({"GENKIT_DATA_DIR": str(SHARED_DATA), **(env or {})})
        sys.argv = ["genkit", *args]
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                cli.main()
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        GlobalHydra.instance().clear()
    return subprocess.CompletedProcess(["genkit", *args], code, stdout.getvalue(), stderr.getvalue())


# a few lines the tiny Hugging Face models' tokenizer is fitted to (and that their runs train on)
HF_TEXT = "\n".join(f"sentence number {i} says hello to the tiny model" for i in range(300))
# tiny random causal LMs of three architectures that transformers builds from a config alone
TINY_HF_CONFIGS = {
    "llama": {"model_type": "llama", "num_key_value_heads": 2, "tie_word_embeddings": False},
    "qwen2": {"model_type": "qwen2", "num_key_value_heads": 2, "tie_word_embeddings": True},
    "gpt_neox": {"model_type": "gpt_neox"},
}


def write_tiny_hf_model(folder: Path, arch: str = "llama", seed: int = 0) -> Path:
    """A Hugging Face checkpoint folder as the hub would serve it (config.json, model.safetensors,
    tokenizer.json), of a random 2-layer, 32-wide model of `arch` with a 320-token byte-level BPE."""
    import torch
    import transformers

    from genkit.data.tokenizers import BPETokenizer

    tokenizer = BPETokenizer.fit(HF_TEXT, vocab_size=320)
    sizes = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}
    settings = {**TINY_HF_CONFIGS[arch], **sizes, "vocab_size": tokenizer.vocab_size, "max_position_embeddings": 128}
    torch.manual_seed(seed)
    config = transformers.AutoConfig.for_model(**settings)
    transformers.AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tokenizer.tokenizer.save(str(folder / "tokenizer.json"))
    return folder


def hf_text_run(tmp_path: Path, folder: Path) -> list[str]:
    """Overrides for a few quick steps of model/lm_net@model.net=hf started from `folder`."""
    corpus = tmp_path / "hf_corpus.txt"
    corpus.write_text(HF_TEXT)
    return [
        "model=lm",
        "model/lm_net@model.net=hf",
        f"model.init_from={folder}",
        "data=text",
        f"data.path={corpus}",
        "data.block_size=32",
        "data.batch_size=4",
        f"data.cache_dir={tmp_path / 'cache'}",
        "trainer.max_steps=2",
        "trainer.accelerator=cpu",
        "trainer.precision=32-true",
        "model.warmup_steps=1",
    ]


def run_under_memory_cap(setup: str, body: str, extra_bytes: int) -> subprocess.CompletedProcess:
    """Python code in a fresh process with the repository importable: `setup` runs first (imports,
    a data module built), then RLIMIT_DATA caps the process (and the workers it starts) at the data
    memory it holds plus extra_bytes, then `body` runs under the cap. Linux counts malloc and
    anonymous maps against it, not file-backed maps."""
    cap = (
        "import resource\n"
        "used = int(open('/proc/self/status').read().split('VmData:')[1].split()[0]) * 1024\n"
        f"resource.setrlimit(resource.RLIMIT_DATA, (used + {extra_bytes}, resource.RLIM_INFINITY))\n"
    )
    script = "\n".join((textwrap.dedent(setup).strip(), cap, textwrap.dedent(body).strip()))
    return subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
