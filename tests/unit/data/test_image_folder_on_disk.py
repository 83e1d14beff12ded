"""data=image_folder at scale: pictures decoded in worker processes into an on-disk array, read
per batch through a memory map, augmented on the fly (genkit/data/image_folder.py)."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from genkit.data import image_folder
from genkit.data.batching import ShuffledBatches
from genkit.data.images import ImageTensors
from tests.helpers import run_under_memory_cap
from tests.unit.data.test_image_folder import CLASSES, caches, datamodule, make_image_folder, mixed_folder


def in_memory(folder: Path, channels: int, size: int, val_size: int, split_seed: int = 12345) -> dict:
    """The splits as the in-memory path made them before the on-disk cache: every readable
    picture decoded and stacked, the non-test ones permuted by split_seed, the first val_size
    to validate on."""
    listing = image_folder.list_images(folder)
    decoded = [
        image_folder._read_or_why(folder / rel, channels, size, image_folder.MAX_PIXELS) for rel in listing.files
    ]
    good = [i for i, picture in enumerate(decoded) if not isinstance(picture, str)]
    images = torch.stack([decoded[i] for i in good])
    labels = torch.tensor([listing.labels[i] for i in good], dtype=torch.long)
    test = torch.tensor([listing.test[i] for i in good], dtype=torch.bool)
    train_images, train_labels = images[~test], labels[~test]
    order = torch.randperm(len(train_labels), generator=torch.Generator().manual_seed(split_seed))
    val, train = order[:val_size], order[val_size:]
    splits = {"train": ImageTensors(train_images[train], train_labels[train])}
    splits["val"] = ImageTensors(train_images[val], train_labels[val])
    splits["test"] = ImageTensors(images[test], labels[test]) if test.any() else splits["val"]
    return splits


def assert_same_split(on_disk, old: ImageTensors) -> None:
    assert len(on_disk) == len(old)
    x, y = on_disk.__getitems__(range(len(old)))
    old_x, old_y = old.__getitems__(range(len(old)))
    assert x.dtype == torch.float32 and torch.equal(x, old_x) and torch.equal(y, old_y)


@pytest.mark.parametrize("layout", ["classes", "train_and_test"])
def test_batches_equal_what_the_in_memory_path_made(tmp_path, layout):
    folder = tmp_path / "shapes"
    if layout == "classes":
        mixed_folder(folder, n=40)
    else:
        mixed_folder(folder / "train", n=30)
        mixed_folder(folder / "test", n=9, seed=1)
    (folder / ("train" if layout != "classes" else "") / CLASSES[0] / "broken.png").write_bytes(b"\x89PNG broken")
    _, dm = datamodule(tmp_path, folder, "data.channels=3", "data.image_size=24", "data.val_size=5",
                       "data.batch_size=8")  # fmt: skip
    old = in_memory(folder, 3, 24, val_size=5)
    assert isinstance(dm.train_set, image_folder.PictureRows)  # read from disk, not held in memory
    for split in ("train", "val", "test"):
        assert_same_split(getattr(dm, f"{split}_set"), old[split])
    # the training batches, in the order the resumable sampler draws them
    sampler = ShuffledBatches(len(old["train"]), 8, seed=dm.seed)
    for (x, y), indices in zip(dm.train_dataloader(), sampler, strict=True):
        old_x, old_y = old["train"].__getitems__(indices)
        assert torch.equal(x, old_x) and torch.equal(y, old_y)
    assert torch.equal(dm.train_set.images, old["train"].images)  # the whole split, for genkit eval


@pytest.mark.slow
@pytest.mark.parametrize("start", ["fork", "spawn"])  # fork on Linux, spawn on macOS
def test_two_worker_processes_decode_what_one_does(tmp_path, monkeypatch, start):
    monkeypatch.setattr(image_folder, "START_METHOD", start)
    folder = mixed_folder(tmp_path / "shapes", n=30)
    (folder / CLASSES[1] / "broken.jpg").write_bytes(b"\xff\xd8 not a JPEG")
    listing = image_folder.list_images(folder)
    # every folder in worker processes, 5 pictures of 3 x 16 x 16 a chunk: 7 chunks, out of order if unordered
    monkeypatch.setattr(image_folder, "PARALLEL_FROM", 0)
    monkeypatch.setattr(image_folder, "CHUNK_BYTES", 5 * 3 * 16 * 16)
    processes, chunks = [], image_folder._decoded_chunks

    def counted(chunk_list, settings, num_proc):
        processes.append(num_proc)
        return chunks(chunk_list, settings, num_proc)

    monkeypatch.setattr(image_folder, "_decoded_chunks", counted)
    one = image_folder.decode_folder(folder, listing, 3, 16, image_folder.MAX_PIXELS, tmp_path / "one.u8", num_proc=1)
    two = image_folder.decode_folder(folder, listing, 3, 16, image_folder.MAX_PIXELS, tmp_path / "two.u8", num_proc=2)
    assert processes == [1, 2]
    assert one == two and len(one[0]) == 31 and one[1] == [(f"{CLASSES[1]}/broken.jpg", "unreadable")]
    pixels = (tmp_path / "one.u8").read_bytes()
    assert len(pixels) == 31 * 3 * 16 * 16 and pixels == (tmp_path / "two.u8").read_bytes()


def test_a_half_written_cache_is_never_used(tmp_path, monkeypatch):
    folder = mixed_folder(tmp_path / "shapes", n=30)
    monkeypatch.setattr(image_folder, "CHUNK_BYTES", 4 * 3 * 64 * 64)  # 4 pictures a chunk
    decode_files, calls = image_folder.decode_files, []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the decode
        return decode_files(*args)

    monkeypatch.setattr(image_folder, "decode_files", interrupted)
    with pytest.raises(KeyboardInterrupt):
        datamodule(tmp_path, folder, "data.val_size=4")
    root = tmp_path / "cache"
    (partial,) = root.glob("*.partial")
    assert (partial / image_folder.PICTURES).stat().st_size == 8 * 3 * 64 * 64  # two chunks written, then stopped
    assert caches(root) == []  # nothing under the cache's own name

    calls.clear()
    monkeypatch.setattr(image_folder, "decode_files", decode_files)
    _, dm = datamodule(tmp_path, folder, "data.val_size=4")
    (cache,) = caches(root)
    assert not list(root.glob("*.partial")) and len(dm.train_set) + len(dm.val_set) == 31
    old = in_memory(folder, 3, 64, val_size=4)
    assert_same_split(dm.val_set, old["val"])
    del dm  # its memory map: a file truncated under a map faults (SIGBUS) where the map is read

    # a cache damaged later (a truncated array) is not read either: the pictures are decoded again
    with open(cache / image_folder.PICTURES, "r+b") as f:
        f.truncate(1000)
    redecoded = []
    monkeypatch.setattr(image_folder, "decode_files", lambda *args: redecoded.append(1) or decode_files(*args))
    _, again = datamodule(tmp_path, folder, "data.val_size=4")
    assert redecoded and (cache / image_folder.PICTURES).stat().st_size == 31 * 3 * 64 * 64
    assert_same_split(again.val_set, old["val"])


def test_hflip_mirrors_some_pictures_as_the_seed_says():
    x = torch.randn(32, 3, 8, 8)

    def flipped(seed: int) -> list[bool]:
        out = image_folder.augment(x, ("hflip",), torch.Generator().manual_seed(seed))
        for picture, original in zip(out, x, strict=True):  # each one as it was, or mirrored left to right
            assert torch.equal(picture, original) or torch.equal(picture, original.flip(-1))
        return [not torch.equal(picture, original) for picture, original in zip(out, x, strict=True)]

    assert flipped(0) == flipped(0) and 4 < sum(flipped(0)) < 28
    assert flipped(0) != flipped(1)


def test_crop_takes_a_window_of_the_reflected_picture():
    x = torch.randn(16, 3, 16, 16)
    out = image_folder.augment(x, ("crop",), torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")  # an eighth of 16 on each side
    shifts = set()
    for i in range(len(x)):
        (shift,) = [(dy, dx) for dy in range(5) for dx in range(5)
                    if torch.equal(out[i], padded[i, :, dy : dy + 16, dx : dx + 16])]  # fmt: skip
        shifts.add(shift)
    assert len(shifts) > 4  # random shifts, not one for all


def test_the_data_module_augments_training_batches_only(tmp_path):
    folder = mixed_folder(tmp_path / "shapes", n=30)
    _, dm = datamodule(tmp_path, folder, "data.val_size=4", "data.batch_size=16", "data.augment=[hflip]")
    assert dm.augment == ("hflip",)
    loader = dm.train_dataloader()
    batch = next(iter(loader))
    dm.trainer = SimpleNamespace(training=False, global_rank=0)
    assert dm.on_after_batch_transfer(batch, 0) is batch  # validation, test: the pictures as they are
    dm.trainer.training = True
    x, y = dm.on_after_batch_transfer(batch, 0)
    mirrored = [not torch.equal(a, b) for a, b in zip(x, batch[0], strict=True)]
    assert 0 < sum(mirrored) < 16 and torch.equal(y, batch[1])
    assert torch.equal(dm.on_after_batch_transfer(batch, 0)[0], x)  # the same batch place: the same flips
    dm._train_batches.consumed()  # the next batch of the epoch draws its own
    assert not torch.equal(dm.on_after_batch_transfer(batch, 0)[0], x)


@pytest.mark.slow
def test_the_data_module_holds_a_batch_not_the_pictures(tmp_path):
    """3000 pictures of 160 x 160, decoded at 3 x 128 x 128 (147 MB) by 2 worker processes (the cap
    holds in each), prepared and read through a whole epoch under a cap of 80 MB of data memory
    over what the process holds after its imports (the cache's memory map is file-backed, outside
    that cap): the in-memory path held every decoded picture, then stacked them into a second copy
    (294 MB)."""
    folder = tmp_path / "big"
    make_image_folder.write_image_folder(folder, n=3000, size=160, classes=2)
    setup = f"""
        from pathlib import Path
        from hydra.utils import instantiate
        from tests.helpers import make_cfg
        cfg = make_cfg(Path({str(tmp_path)!r}), "data=image_folder", "data.path={folder}", "data.image_size=128",
                       "data.cache_dir={tmp_path / "cache"}", "data.batch_size=16", "data.val_size=16",
                       "data.num_proc=2")
        dm = instantiate(cfg.data)
        """
    body = """
        dm.prepare_data()
        dm.setup()
        seen = sum(len(y) for _, y in dm.train_dataloader()) + sum(len(y) for _, y in dm.val_dataloader())
        print("SEEN", seen)
        """
    out = run_under_memory_cap(setup, body, 80_000_000)
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.split("SEEN")[1]) == 2976 + 16  # the whole epoch's batches, then validation


def test_a_set_small_enough_for_the_accelerator_is_copied_there_in_pieces(tmp_path, monkeypatch):
    """The path data.on_device takes on a GPU (a tenth of its memory or less), run on the CPU: the
    rows copied a few at a time into one uint8 tensor, equal to the rows read from disk."""
    folder = mixed_folder(tmp_path / "shapes", n=30)
    _, dm = datamodule(tmp_path, folder, "data.val_size=4")
    monkeypatch.setattr(image_folder, "DEVICE_COPY_ROWS", 4)  # 27 training rows: 7 pieces, the last of 3
    dm._device = torch.device("cpu")
    on_device = dm._split(dm._read(), dm.train_set.rows)
    assert isinstance(on_device, ImageTensors) and on_device.images.dtype == torch.uint8
    assert_same_split(on_device, dm.train_set)
