import json

import pytest
import torch

from genkit.commands.train import train
from genkit.errors import GenkitError
from genkit.metrics.classifier import DomainClassifier, domain_classifier
from genkit.metrics.image_scores import classifier_scores
from genkit.models.vae import nll_samples
from tests.helpers import TINY_IMAGE_RUN, make_cfg, needs_shared, run_cli


def test_fid_of_identical_sets_is_zero_and_grows_with_noise():
    torch.manual_seed(0)
    classifier = DomainClassifier().eval()
    images = torch.rand(256, 1, 28, 28) * 2 - 1
    batches = lambda x: list(x.split(64))  # noqa: E731
    fid = {}
    for sigma in (0.0, 0.1, 0.5):
        noisy = (images + sigma * torch.randn_like(images)).clamp(-1, 1)
        fid[sigma] = classifier_scores(classifier, batches(images), batches(noisy), "cpu")["fid_clf"]
    assert abs(fid[0.0]) < 1e-3
    assert fid[0.0] < fid[0.1] < fid[0.5]


def test_classifier_is_cached_and_reused(tmp_path, tiny_data_root):
    from hydra.utils import instantiate

    dm = instantiate(make_cfg(tmp_path, f"data.root={tiny_data_root}", "data.val_size=16").data)
    first, record = domain_classifier(dm, epochs=1, cache_dir=tmp_path / "cls")
    assert record["trained_now"]
    second, record2 = domain_classifier(dm, epochs=1, cache_dir=tmp_path / "cls")
    assert not record2["trained_now"] and record2["test_accuracy"] == record["test_accuracy"]
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a.cpu(), b.cpu())


@pytest.mark.slow
@pytest.mark.parametrize("model", ["vae", "gan"])
def test_eval_cli_writes_json(tmp_path, tiny_data_root, model):
    extra = ["model.test_nll_samples=8"] if model == "vae" else []
    train(make_cfg(tmp_path, f"model={model}", f"data.root={tiny_data_root}", *TINY_IMAGE_RUN, *extra))
    run = tmp_path / "outputs" / "run"
    out = run_cli(
        "eval",
        f"ckpt={run}",
        "n_samples=64",
        "batch_size=32",
        "classifier_epochs=1",
        cwd=tmp_path,
        env={"GENKIT_DATA_DIR": str(tiny_data_root), "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads((run / "eval.json").read_text())
    assert result["fid_clf"] >= 0 and result["is_clf"] >= 1
    assert ("test/nll" in result) == (model == "vae")
    assert result.get("nll_samples") == (8 if model == "vae" else None)


def test_nll_samples_auto_caps_on_cpu_only():
    assert nll_samples("auto", 1000, "cpu") == 100
    assert nll_samples("auto", 1000, "cuda") == 1000
    assert nll_samples("auto", 8, "cpu") == 8
    assert nll_samples(1000, 1000, "cpu") == 1000
    with pytest.raises(GenkitError, match="nll_samples"):
        nll_samples("many", 1000, "cpu")


@pytest.mark.slow
@needs_shared("mnist")
def test_real_vs_real_fid_is_near_zero(tmp_path, mnist_classifier_cache):
    out = run_cli(
        "eval",
        "real=true",
        "data=mnist",
        "n_samples=5000",
        "classifier_epochs=1",
        f"out={tmp_path}/r.json",
        cwd=tmp_path,
        env={"XDG_CACHE_HOME": str(mnist_classifier_cache)},
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["classifier"]["test_accuracy"] > 0.98
    # MNIST's train and test writers differ a little; generated digits score tens to hundreds
    assert result["fid_clf"] < 5.0


@pytest.mark.slow
@needs_shared("mnist")
def test_train_vae_then_eval_cli(tmp_path, mnist_classifier_cache):
    run = tmp_path / "run"
    out = run_cli("train", "model=vae", "data=mnist", "++trainer.max_steps=30", f"hydra.run.dir={run}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    out = run_cli(
        "eval",
        f"ckpt={run}/checkpoints/last.ckpt",
        "n_samples=500",
        "nll_samples=10",
        "classifier_epochs=1",
        cwd=tmp_path,
        env={"XDG_CACHE_HOME": str(mnist_classifier_cache)},
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads((run / "eval.json").read_text())
    assert "fid_clf" in result and result["test/nll"] > 0
