"""trainer=fsdp as far as a machine without CUDA GPUs takes it: the preset composes and builds
Lightning's FSDPStrategy with genkit's layers wrapped and checkpointed. Training with it needs
CUDA GPUs: Lightning refuses accelerator=cpu (tests/cli/test_bad_input.py has that paragraph)."""

import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.strategies import FSDPStrategy

from genkit.models.nets.transformer import Block
from tests.helpers import make_cfg, tiny_text_run


def test_fsdp_preset_builds_lightnings_strategy(tmp_path):
    cfg = make_cfg(tmp_path, *tiny_text_run(tmp_path), "trainer=fsdp", "trainer.accelerator=gpu")
    assert cfg.trainer.devices == "auto"
    strategy = instantiate(cfg.trainer.strategy)
    assert isinstance(strategy, FSDPStrategy)
    assert strategy._state_dict_type == "full"  # one consolidated checkpoint, genkit's ordinary file
    # the transformer blocks are the sharded units and the ones whose activations are recomputed
    assert strategy.kwargs["auto_wrap_policy"]._module_classes == {Block}
    assert strategy._activation_checkpointing_kwargs["auto_wrap_policy"]._module_classes == {Block}


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="FSDP in Lightning needs CUDA GPUs; this test needs 2")
def test_fsdp_run_on_two_gpus_writes_an_ordinary_checkpoint(tmp_path):
    from genkit.checkpoints.files import load_checkpoint
    from tests.helpers import run_cli

    run = tmp_path / "run"
    overrides = [*tiny_text_run(tmp_path), "trainer=fsdp", "trainer.devices=2", "trainer.max_steps=4"]
    out = run_cli("train", *overrides, "trainer.accelerator=gpu", f"hydra.run.dir={run}", cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    state = load_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]
    assert not any("_fsdp_wrapped_module" in k or "_checkpoint_wrapped_module" in k for k in state)
    exported = run_cli("export", f"ckpt={run}", f"out={tmp_path / 'model.ckpt'}", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr[-3000:]
