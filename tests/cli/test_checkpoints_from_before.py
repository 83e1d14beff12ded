"""Checkpoints written before genkit's modules moved into layers (main at 14332b0) still sample,
evaluate and resume. The fixtures and the overrides they were trained with come from
scripts/make_fixture_checkpoints.py."""

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from genkit.checkpoints.trust import with_current_targets
from genkit.commands.train import train
from genkit.errors import GenkitError
from tests.helpers import REPO, cli_in_process, make_cfg

sys.path.insert(0, str(REPO / "scripts"))
from make_fixture_checkpoints import CORPUS, FAMILIES, GPT_RUN, IMAGE_RUN  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures" / "checkpoints_14332b0"
ALL = [*FAMILIES, "gpt"]


def _copy(tmp_path: Path, family: str) -> Path:
    """The fixture run, copied (sampling writes into its run directory)."""
    run = tmp_path / f"{family}_run"
    shutil.copytree(FIXTURES / family, run)
    (tmp_path / "corpus.txt").write_text(CORPUS)  # the GPT's data.path, relative to where it runs
    return run


def test_the_fixtures_name_a_class_that_moved():
    """At least one stored `_target_` uses a module path that no longer exists, so the tests below
    exercise the table of moved classes (genkit.checkpoints.trust.MOVED_TARGETS)."""
    config = torch.load(FIXTURES / "gan" / "checkpoints" / "last.ckpt", weights_only=True)["genkit"]["config"]
    assert config["logger"]["csv"]["_target_"] == "genkit.csv_logger.RunCSVLogger"
    config = torch.load(FIXTURES / "gpt" / "checkpoints" / "last.ckpt", weights_only=True)["genkit"]["config"]
    assert config["model"]["_target_"] == "genkit.models.gpt.GPT"  # the language-model family's old name
    assert with_current_targets(config)["model"]["_target_"] == "genkit.models.lm.LanguageModel"


@pytest.mark.parametrize("family", ALL)
def test_old_checkpoint_samples_and_evaluates(tmp_path, tiny_data_root, family):
    run = _copy(tmp_path, family)
    suffix = "txt" if family == "gpt" else "png"
    out = tmp_path / f"samples.{suffix}"
    sampled = cli_in_process("sample", f"ckpt={run}", "n=4", f"out={out}", f"data_root={tiny_data_root}", cwd=tmp_path)
    assert sampled.returncode == 0, sampled.stderr[-2000:]
    assert out.is_file() and out.stat().st_size > 0
    # the GPT's stored data.path is not signed by this machine: its user names their copy of the data
    data = ["data_path=corpus.txt"] if family == "gpt" else []
    scored = cli_in_process(
        "eval", f"ckpt={run}", "n_samples=20", "batch_size=10", "classifier_epochs=1", f"data_root={tiny_data_root}",
        *data, cwd=tmp_path, env={"XDG_CACHE_HOME": str(tmp_path / "cache")},
    )  # fmt: skip
    assert scored.returncode == 0, scored.stderr[-2000:]
    report = json.loads((run / "eval.json").read_text())
    assert any(key.startswith("test/") for key in report)
    if family != "gpt":
        assert report["fid_clf"] >= 0


@pytest.mark.parametrize("family", ALL)
def test_old_checkpoint_resumes(tmp_path, tiny_data_root, family, monkeypatch):
    ckpt = _copy(tmp_path, family) / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=True)["global_step"] == 2
    monkeypatch.chdir(tmp_path)
    if family == "gpt":
        overrides = [*GPT_RUN, f"data.cache_dir={tmp_path / 'cache'}"]
    else:
        overrides = [f"data.root={tiny_data_root}", *IMAGE_RUN, *FAMILIES[family]]
    if family == "diffusion":  # trained with genkit's U-Net, the default denoiser until 2026-12-07
        with pytest.raises(GenkitError, match=r"pass model/denoiser@model.net=unet"):
            train(make_cfg(tmp_path, *overrides, "trainer.max_steps=4", f"resume={ckpt}"))
        overrides.append("model/denoiser@model.net=unet")
    train(make_cfg(tmp_path, *overrides, "trainer.max_steps=4", f"resume={ckpt}"))
    resumed = torch.load(tmp_path / "outputs" / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["global_step"] == 4
