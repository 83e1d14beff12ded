"""Colour pictures at 32 and 64 pixels through every image family: a user's folder of pictures in
class sub-folders trains, writes colour grids, generates by sub-folder, and is scored honestly
when it has no labels."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from genkit.commands.train import train
from tests.helpers import REPO, TINY_IMAGE_RUN, cli_in_process, make_cfg

FAMILIES = {
    "gan": ("model=gan", "model.generator.width=8", "model.discriminator.width=8"),
    "vae": ("model=vae", "model.encoder.width=8"),
    "diffusion": ("model=diffusion", "model.net.base=8", "model.sample_steps=3", "model.timesteps=10"),
}


def make_folder(out: Path, n: int, size: int, classes: int) -> Path:
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_image_folder.py"), str(out), "--n", str(n), "--size",
         str(size), "--classes", str(classes)],
        check=True, capture_output=True,
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("pictures") / "shapes", n=60, size=40, classes=3)


def _is_colour(png: Path) -> bool:
    image = Image.open(png).convert("RGB")
    return any(len(set(pixel)) > 1 for pixel in image.getdata())


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("size", [32, 64])
def test_every_family_trains_on_a_folder_of_colour_pictures(tmp_path, pictures, family, size):
    cfg = make_cfg(tmp_path, "data=image_folder", f"data.path={pictures}", f"data.image_size={size}",
                   f"data.cache_dir={tmp_path / 'cache'}", *TINY_IMAGE_RUN, "data.val_size=6",
                   *FAMILIES[family])  # fmt: skip
    assert cfg.data.num_classes == 3
    train(cfg)
    (grid,) = sorted((tmp_path / "outputs" / "run" / "samples").glob("step_*.png"))[-1:]
    assert _is_colour(grid)
    width, _ = Image.open(grid).size
    assert width > 8 * size  # an 8x8 grid of size-pixel images


@pytest.mark.slow
def test_a_conditional_diffusion_model_draws_a_row_per_sub_folder(tmp_path, pictures):
    cfg = make_cfg(tmp_path, "data=image_folder", f"data.path={pictures}", "data.image_size=32",
                   f"data.cache_dir={tmp_path / 'cache'}", *TINY_IMAGE_RUN, "data.val_size=6",
                   *FAMILIES["diffusion"], "model.conditional=true")  # fmt: skip
    train(cfg)
    ckpt = tmp_path / "outputs" / "run" / "checkpoints" / "last.ckpt"
    out = cli_in_process("sample", f"ckpt={ckpt}", "labels=all", "n=6", f"out={tmp_path / 'rows.png'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    grid = Image.open(tmp_path / "rows.png")
    # torchvision's grid: 2 px padding around 32-px images; one row per class (3), two per row
    assert grid.size == (2 + 2 * 34, 2 + 3 * 34)
    assert _is_colour(tmp_path / "rows.png")


def test_eval_of_unlabelled_pictures_says_no_classifier_score(tmp_path):
    folder = tmp_path / "photos"
    make_folder(folder / "tmp", n=24, size=32, classes=1)
    for png in (folder / "tmp").rglob("*.png"):  # no class sub-folders: all pictures in one folder
        png.rename(folder / f"{png.parent.name}-{png.name}")
    cfg = make_cfg(tmp_path, "data=image_folder", f"data.path={folder}", "data.image_size=32",
                   f"data.cache_dir={tmp_path / 'cache'}", *TINY_IMAGE_RUN, "data.val_size=6",
                   *FAMILIES["vae"])  # fmt: skip
    assert cfg.data.num_classes == 1
    train(cfg)
    run = tmp_path / "outputs" / "run"
    out = cli_in_process("eval", f"ckpt={run}", "n_samples=8", "batch_size=4",
                         f"inception_weights={tmp_path / 'no-weights.pth'}", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads((run / "eval.json").read_text())
    assert report["fid_clf"] is None and "no class labels" in report["fid_clf_note"]
    assert report["inception_fid"] is None and report["inception_fid_note"].startswith("no FID can be computed")
    assert "test/elbo" in report  # the family's own test metrics still come
