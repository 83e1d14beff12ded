"""`genkit bench` and the fast paths: it runs and writes JSON for every family (no timing
assertions here: speed targets live in the benchmark, not in tests)."""

import json

import pytest
import torch

from genkit.training.build import build_model
from tests.helpers import TINY_IMAGE_RUN, make_cfg, run_cli, tiny_text_run

# each runs the whole bench command: minutes together, so in the slow tier
pytestmark = pytest.mark.slow

FAMILIES = [
    ("gan", ()),
    ("vae", ()),
    ("diffusion", ("model.net.base=8",)),
]


def bench_images(tmp_path, data_root, *overrides: str):
    """A few steps of `genkit bench` on the tiny image set, writing <tmp_path>/b.json."""
    return run_cli(
        "bench",
        f"data.root={data_root}",
        *TINY_IMAGE_RUN[:3],
        "steps=3",
        "warmup=1",
        "rounds=1",
        f"out={tmp_path / 'b.json'}",
        *overrides,
        cwd=tmp_path,
    )


@pytest.mark.parametrize("model,extra", FAMILIES)
def test_bench_image_families_write_json(tmp_path, tiny_data_root, model, extra):
    out = bench_images(tmp_path, tiny_data_root, f"model={model}", *extra, "compare=false")
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads((tmp_path / "b.json").read_text())
    assert result["steps_per_s"] > 0 and result["samples_per_s"] == pytest.approx(16 * result["steps_per_s"])
    assert result["seconds_per_epoch"] > 0


def test_bench_gpt_against_the_raw_loop(tmp_path):
    bench = ("steps=3", "warmup=1", "rounds=2", "compare=true", f"out={tmp_path / 'b.json'}")
    out = run_cli("bench", *tiny_text_run(tmp_path), *bench, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads((tmp_path / "b.json").read_text())
    assert result["tokens_per_s"] == pytest.approx(8 * 16 * result["steps_per_s"])
    assert result["ratio_to_raw"] > 0 and len(result["rounds_raw"]) == 2
    # the model FLOPs utilisation, against this CPU's fastest matmul on the bench's threads
    assert 0 < result["mfu"] < 1 and result["mfu_peak_gflops"] > 0 and "matmul" in result["mfu_peak"]


def test_bench_gan_against_the_raw_loop(tmp_path, tiny_data_root):
    out = bench_images(tmp_path, tiny_data_root, "model=gan")
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((tmp_path / "b.json").read_text())["raw_steps_per_s"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("model,data", [("gpt", "ptb"), ("gan", "mnist")])
def test_compiled_networks_match_and_keep_plain_checkpoint_names(tmp_path, model, data):
    cfg = make_cfg(tmp_path, f"model={model}", f"data={data}", "trainer.accelerator=cpu")
    torch.manual_seed(0)
    plain = build_model(cfg).eval()
    compiled = build_model(
        make_cfg(tmp_path, f"model={model}", f"data={data}", "trainer.compile=true", "trainer.accelerator=cpu")
    ).eval()
    compiled.load_state_dict(plain.state_dict())
    assert list(compiled.state_dict()) == list(plain.state_dict())  # no `_orig_mod.` prefixes
    if model == "gpt":
        x = torch.randint(0, 10_000, (2, 16))
        torch.testing.assert_close(compiled.net.hidden(x)[0], plain.net.hidden(x)[0], atol=1e-4, rtol=1e-4)
    else:
        z = torch.randn(4, plain.latent_dim)
        torch.testing.assert_close(compiled.generator(z), plain.generator(z), atol=1e-4, rtol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_resident_images_give_the_dataloader_batches(tmp_path, tiny_data_root):
    from hydra.utils import instantiate

    from genkit.data.images import ImageTensors

    dm = instantiate(make_cfg(tmp_path, f"data.root={tiny_data_root}", "data.val_size=16").data)
    dm.setup()
    on_gpu = ImageTensors(dm.train_set.images.cuda(), dm.train_set.labels.cuda())
    for a, b in zip(dm.train_set.__getitems__([3, 1, 4]), on_gpu.__getitems__([3, 1, 4]), strict=True):
        assert torch.equal(a, b.cpu())
