"""`data=image_folder data.path=<folder>`: a user's own pictures, decoded once and cached."""

import importlib.util
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from genkit.data import image_folder
from tests.helpers import REPO, TINY_IMAGE_RUN, cli_in_process, make_cfg

_spec = importlib.util.spec_from_file_location("make_image_folder", REPO / "scripts" / "make_image_folder.py")
make_image_folder = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_image_folder)

CLASSES = make_image_folder.class_names(3)  # blue_triangle, green_square, red_circle once sorted


def mixed_folder(folder: Path, n: int = 30, seed: int = 0) -> Path:
    """n colour PNGs of mixed sizes (wide, tall, small, large) in 3 class folders, plus a JPEG."""
    rng = np.random.default_rng(seed)
    sizes = [(64, 64), (80, 48), (40, 100), (20, 20), (130, 90)]
    for i in range(n):
        name = CLASSES[i % 3]
        (folder / name).mkdir(parents=True, exist_ok=True)
        make_image_folder.shape_image(name, *sizes[i % len(sizes)], rng).save(folder / name / f"{i:03d}.png")
    make_image_folder.shape_image(CLASSES[0], 70, 50, rng).save(folder / CLASSES[0] / "photo.JPG", quality=90)
    return folder


def caches(root: Path) -> list[Path]:
    """The complete caches under a cache root (not the lock files or unfinished folders beside them)."""
    return sorted(p for p in root.iterdir() if not p.name.startswith("."))


def datamodule(tmp_path: Path, folder: Path, *overrides: str):
    cfg = make_cfg(tmp_path, "data=image_folder", f"data.path={folder}", f"data.cache_dir={tmp_path / 'cache'}",
                   *overrides)  # fmt: skip
    dm = instantiate(cfg.data)
    dm.setup()
    return cfg, dm


@pytest.mark.parametrize("channels,size", [(3, 64), (1, 32)])
def test_a_folder_reads_to_shapes_labels_and_class_names(tmp_path, channels, size):
    folder = mixed_folder(tmp_path / "shapes")
    cfg, dm = datamodule(tmp_path, folder, f"data.channels={channels}", f"data.image_size={size}", "data.val_size=4")
    assert cfg.data.class_names == sorted(CLASSES) and cfg.data.num_classes == 3
    assert dm.class_names == sorted(CLASSES)
    images = torch.cat([dm.train_set.images, dm.val_set.images])
    labels = torch.cat([dm.train_set.labels, dm.val_set.labels])
    assert images.shape == (31, channels, size, size) and images.dtype == torch.uint8
    assert (len(dm.train_set), len(dm.val_set)) == (27, 4)
    assert torch.equal(dm.test_set.images, dm.val_set.images)  # no test/ folder: test = validation
    # labels follow the sorted class folders: 11 red circles (with the JPEG), 10 of each other shape
    assert torch.bincount(labels).tolist() == [10, 10, 11]
    x, y = next(iter(dm.val_dataloader()))
    assert x.shape == (4, channels, size, size) and x.min() >= -1 and x.max() <= 1
    if channels == 3:  # a class's pictures show its colour: the red circles are mostly red
        red = images[labels == sorted(CLASSES).index("red_circle")].float()
        assert (red[:, 0] - red[:, 2]).mean() > 10


def test_the_split_is_fixed_by_seed_and_a_fraction_takes_at_least_one(tmp_path):
    folder = mixed_folder(tmp_path / "shapes")

    def val(*overrides):
        return datamodule(tmp_path, folder, *overrides)[1].val_set.images

    assert torch.equal(val("data.split_seed=1", "data.val_size=5"), val("data.split_seed=1", "data.val_size=5"))
    assert not torch.equal(val("data.split_seed=1", "data.val_size=5"), val("data.split_seed=2", "data.val_size=5"))
    assert len(val("data.val_size=0.1")) == 3  # round(0.1 * 31)
    assert len(val("data.val_size=0.001")) == 1


def test_one_class_without_sub_folders_and_a_folder_with_train_and_test(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        make_image_folder.shape_image("teal_cross", 48, 48, rng).save(flat / f"{i}.webp")
    cfg, dm = datamodule(tmp_path, flat, "data.val_size=2")
    assert cfg.data.class_names == ["flat"] and cfg.data.num_classes == 1
    assert set(dm.train_set.labels.tolist()) == {0} and len(dm.train_set) == 10

    split = tmp_path / "split"
    mixed_folder(split / "train", n=18)
    mixed_folder(split / "test", n=6, seed=1)
    cfg, dm = datamodule(tmp_path, split, "data.val_size=3")
    assert cfg.data.class_names == sorted(CLASSES)
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (16, 3, 7)
    assert torch.bincount(dm.test_set.labels).tolist() == [2, 2, 3]


def test_the_cache_is_read_without_decoding_and_follows_the_files(tmp_path, monkeypatch):
    folder = mixed_folder(tmp_path / "shapes")
    _, first = datamodule(tmp_path, folder, "data.val_size=4")
    cached = caches(tmp_path / "cache")
    assert len(cached) == 1 and cached[0].is_dir()
    assert not list((tmp_path / "cache").glob("*.partial"))  # no unfinished folder left beside it

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the cache matches")

    monkeypatch.setattr(image_folder, "decode_folder", no_decoding)
    _, second = datamodule(tmp_path, folder, "data.val_size=4")
    assert torch.equal(first.train_set.images, second.train_set.images)
    assert torch.equal(first.val_set.labels, second.val_set.labels)

    def key():
        return second.cache_folder(image_folder.list_images(folder))

    assert key() == cached[0]
    # what genkit eval keys its classifier by: the cache's meta.json, which names the cache
    assert second.source_files() == {cached[0].name: cached[0] / "meta.json"}
    png = next(folder.glob("*/*.png"))
    os.utime(png, ns=(png.stat().st_atime_ns, png.stat().st_mtime_ns + 10**9))
    touched = key()
    assert touched != cached[0]
    Image.new("RGB", (32, 32), (200, 30, 30)).save(folder / CLASSES[2] / "new.png")
    assert key() not in (touched, cached[0])
    with pytest.raises(AssertionError, match="decoded again"):
        datamodule(tmp_path, folder, "data.val_size=4")


def test_corrupt_and_non_image_files_are_left_out_with_one_warning(tmp_path, caplog):
    folder = mixed_folder(tmp_path / "shapes")
    good = next(folder.glob("red_circle/*.png")).read_bytes()
    (folder / "red_circle" / "broken.png").write_bytes(good[: len(good) // 3])  # truncated
    (folder / "green_square" / "fake.jpg").write_text("not a picture")
    (folder / "notes.txt").write_text("where the pictures came from")
    with caplog.at_level(logging.WARNING, logger="genkit.data.image_folder"):
        _, dm = datamodule(tmp_path, folder, "data.val_size=4", "data.batch_size=8")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "Left out 3" in warnings[0] and "broken.png" in warnings[0] and "fake.jpg" in warnings[0]
    assert len(dm.train_set) + len(dm.val_set) == 31
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 3, 64, 64) and torch.isfinite(x).all()


def bad_folders(tmp_path: Path) -> dict[str, Path]:
    good = mixed_folder(tmp_path / "good")
    empty = tmp_path / "empty"
    empty.mkdir()
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("no pictures here")
    (tmp_path / "file.png").write_bytes(b"")
    return {"good": good, "empty": empty, "texts": texts, "missing": tmp_path / "nope", "file": tmp_path / "file.png"}


# (folder, overrides, words the message must contain)
CLI_CASES = [
    ("empty", [], ["holds no pictures", "empty", ".png, .jpg, .jpeg, .webp"]),
    ("texts", [], ["holds no pictures", "texts", "1 other files"]),
    ("missing", [], ["does not exist", "nope", "PNG, JPEG or WebP"]),
    ("file", [], ["is a file", "file.png"]),
    ("good", ["data.channels=4"], ["data.channels=4", "(data.channels=3)", "(data.channels=1)"]),
    ("good", ["data.image_size=4"], ["data.image_size=4 is too small", "8 or more"]),
    ("good", ["data.val_size=1.5"], ["data.val_size=1.5", "fraction"]),
    ("good", ["data.val_size=31"], ["31 readable training pictures", "lower data.val_size"]),
]


@pytest.mark.parametrize("folder,overrides,words", CLI_CASES, ids=[" ".join([c[0], *c[1]]) for c in CLI_CASES])
def test_bad_folders_are_one_paragraph(tmp_path, folder, overrides, words):
    path = bad_folders(tmp_path)[folder]
    out = cli_in_process(
        "train", "data=image_folder", f"data.path={path}", f"data.cache_dir={tmp_path / 'cache'}",
        *TINY_IMAGE_RUN, *overrides, cwd=tmp_path,
    )  # fmt: skip
    message = " ".join(out.stderr.split())
    assert out.returncode == 2, out.stderr[-3000:]
    assert "Traceback" not in out.stderr + out.stdout
    assert len(out.stderr.strip().splitlines()) <= 8, out.stderr
    for word in words:
        assert word in message, (word, message)


def test_a_conditional_gan_trains_on_a_folder_and_draws_a_colour_grid(tmp_path):
    from genkit.commands.train import train

    folder = tmp_path / "shapes"
    make_image_folder.write_image_folder(folder, n=72, size=40, classes=3)
    (folder / "red_circle" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")  # left out, not a crash
    cfg = make_cfg(
        tmp_path, "model=gan", "model.conditional=true", "data=image_folder", f"data.path={folder}",
        "data.image_size=32", f"data.cache_dir={tmp_path / 'cache'}", *TINY_IMAGE_RUN, "data.val_size=8",
    )  # fmt: skip
    assert cfg.model.generator.num_classes == 3 and cfg.model.generator.channels == 3
    train(cfg)
    grids = sorted((tmp_path / "outputs" / "run" / "samples").glob("step_*.png"))
    assert grids, list((tmp_path / "outputs" / "run").rglob("*"))
    with Image.open(grids[-1]) as grid:
        assert grid.mode == "RGB"
        pixels = np.asarray(grid).astype(int)
    # not grey: the channels differ (a 1-channel grid is written as three equal channels)
    assert np.abs(pixels[..., 0] - pixels[..., 1]).max() > 10 and np.abs(pixels[..., 1] - pixels[..., 2]).max() > 10

    # the checkpoint samples by class name without the folder (its config holds the class names)
    folder.rename(tmp_path / "moved")
    ckpt = tmp_path / "outputs" / "run" / "checkpoints" / "last.ckpt"
    red = tmp_path / "red.png"
    out = cli_in_process("sample", f"ckpt={ckpt}", "label=red_circle", "n=4", f"out={red}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    with Image.open(red) as grid:
        assert grid.mode == "RGB"


def test_pillow_reads_what_torchvision_refuses(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    make_image_folder.shape_image("green_square", 50, 40, rng).save(tmp_path / "a.png")
    expected = image_folder.read_image(tmp_path / "a.png", 3, 16)

    def refuse(*args, **kwargs):
        raise RuntimeError("Unsupported image file")

    monkeypatch.setattr(image_folder, "decode_image", refuse)
    through_pillow = image_folder.read_image(tmp_path / "a.png", 3, 16)
    assert through_pillow.shape == (3, 16, 16) and (through_pillow.int() - expected.int()).abs().max() <= 2


def bomb_png(path: Path, side: int = 10_000) -> Path:
    """A valid 1-bit grey PNG of side x side pixels, all black: 100 M pixels (over Pillow's limit)
    in a file of a few KB, written row by row without ever holding the picture."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer, row = zlib.compressobj(9), bytes(1 + (side + 7) // 8)  # filter byte, then 1 bit a pixel
    pixels = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("name,options", [("a.png", {}), ("b.jpg", {}), ("c.jpg", {"progressive": True}),
                                          ("d.webp", {}), ("e.webp", {"lossless": True}), ("f.webp", {"alpha": 1}),
                                          ("g.gif", {})])  # fmt: skip
def test_picture_size_is_read_from_the_header(tmp_path, monkeypatch, name, options):
    rng = np.random.default_rng(0)
    channels = 4 if options.pop("alpha", 0) else 3  # a WebP with alpha is an extended (VP8X) one
    Image.fromarray(rng.integers(0, 256, (37, 53, channels), dtype=np.uint8)).save(tmp_path / name, **options)
    if not name.endswith(".gif"):  # PNG, JPEG and WebP headers are read without Pillow
        monkeypatch.setattr(Image, "open", lambda *a, **k: pytest.fail("Pillow opened a PNG, JPEG or WebP"))
    assert image_folder.picture_size(tmp_path / name) == (53, 37)
    assert bomb_png(tmp_path / "bomb.png").stat().st_size < 50_000
    assert image_folder.picture_size(tmp_path / "bomb.png") == (10_000, 10_000)


def test_a_decompression_bomb_is_left_out_before_decoding_and_training_runs(tmp_path, monkeypatch):
    folder = tmp_path / "shapes"
    make_image_folder.write_image_folder(folder, n=24, size=32, classes=3)
    bomb_png(folder / "red_circle" / "huge.png")
    decoded, read_image = [], image_folder.read_image

    def recorded(path, *args):
        decoded.append(Path(path).name)
        return read_image(path, *args)

    monkeypatch.setattr(image_folder, "read_image", recorded)
    out = cli_in_process(
        "train", "model=gan", "data=image_folder", f"data.path={folder}", f"data.cache_dir={tmp_path / 'cache'}",
        "data.image_size=32", *TINY_IMAGE_RUN, "data.val_size=4", "trainer.max_steps=1",
        f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(decoded) == 24 and "huge.png" not in decoded  # its header was enough
    log = (tmp_path / "run" / "genkit.log").read_text()  # what the terminal showed too
    warnings = [line for line in log.splitlines() if "Left out" in line]
    assert len(warnings) == 1 and "Left out 1 of the files" in warnings[0], warnings
    assert "red_circle/huge.png (10000 x 10000 pixels, over data.max_pixels=89478485)" in warnings[0]


def test_max_pixels_leaves_out_larger_pictures_and_keys_the_cache(tmp_path, caplog):
    folder = mixed_folder(tmp_path / "shapes")
    _, everything = datamodule(tmp_path, folder, "data.val_size=4")
    with caplog.at_level(logging.WARNING, logger="genkit.data.image_folder"):
        _, small = datamodule(tmp_path, folder, "data.val_size=4", "data.max_pixels=5000")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    # 6 pictures of 130 x 90 = 11,700 pixels; 64 x 64, 80 x 48, 40 x 100, 20 x 20 and the 70 x 50 JPEG fit
    assert len(warnings) == 1 and "Left out 6" in warnings[0], warnings
    assert "(130 x 90 pixels, over data.max_pixels=5000)" in warnings[0]
    assert len(everything.train_set) + len(everything.val_set) == 31
    assert len(small.train_set) + len(small.val_set) == 25
    assert len(caches(tmp_path / "cache")) == 2  # the limit is part of the cache's key
