"""A folder of the user's own pictures: `genkit train data=image_folder data.path=<folder>`.

Every PNG, JPEG and WebP file under data.path is decoded once (torchvision; Pillow for what its
decoders refuse), converted to data.channels (3: colour, 1: grey), its shorter side resized to
data.image_size (antialiased) and centre-cropped to a square. The uint8 results go to an on-disk
array in data.cache_dir, keyed by the files' names, sizes and times and those settings, so that a
second run starts in seconds. Nothing here holds the whole set in memory, whatever its size:

- decoding runs in data.num_proc worker processes, a chunk of files each, one chunk per worker
  and two more in flight, and the chunks are appended to the array in the files' order as they
  come;
- the cache is prepared in a partial folder beside it and renamed into place only when complete
  (one rename), so a half-written cache is never read; an interrupted decode starts again;
- training and evaluation batches index the array as a memory map (np.memmap) and scale to
  [-1, 1] per batch; data.augment flips or crops each training batch on the fly.

Layouts, and where labels and splits come from:

    photos/cat/*.jpg, photos/dog/*.jpg  classes [cat, dog] (the sorted first-level sub-folders; any
                                        depth below them), so model.conditional=true works
    photos/*.jpg                        one class named after the folder, every label 0: train it
                                        unconditionally (model.conditional=false, the default);
                                        conditioning on a single class learns nothing more
    photos/train/<class>/, photos/test/<class>/
                                        train/ gives training and validation images, test/ the
                                        test split (classes: train/'s sub-folders)

Validation: data.val_size images of the training ones (a fraction such as 0.05, at least one
image, or a count), drawn with the fixed data.split_seed. Without a test/ folder, the test split is
the validation split. Files that cannot be decoded are left out with one warning line, and so are
pictures of more than data.max_pixels pixels: their size is read from the file's header before
anything is decoded (picture_size), so a decompression bomb (a small PNG of 40000 x 40000 pixels)
never reaches the decoders.
"""

import concurrent.futures
import errno
import hashlib
import json
import logging
import multiprocessing
import os
import re
import shutil
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from filelock import FileLock
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as F

from genkit.console import tracked
from genkit.data.batching import data_device
from genkit.data.download import default_data_root
from genkit.data.images import ImageDataModule, ImageTensors
from genkit.data.token_files import default_num_proc
from genkit.errors import GenkitError

log = logging.getLogger(__name__)

SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
# bump when what is cached (or how images are resized) changes, so old caches are not reused
# (3: an on-disk array in a folder, instead of one .pt file loaded whole)
CACHE_VERSION = 3
# the default data.max_pixels: Pillow's own decompression-bomb limit (Image.MAX_IMAGE_PIXELS),
# about 89.5 M pixels, a quarter of a GiB of RGBA
MAX_PIXELS = 1024 * 1024 * 1024 // 4 // 3
# folders with more files than this show their decoding progress
PROGRESS_FROM = 1000
# folders of this many files or more are decoded in data.num_proc worker processes; fewer here
PARALLEL_FROM = 256
# how the workers start. fork on Linux: at once, sharing this process's imported modules (spawned
# ones import torch and lightning again: ~5 s and ~0.4 GB each), as PyTorch's DataLoader workers
# start; they only decode, never touching what this process's other threads hold. spawn elsewhere
# (macOS's system libraries do not survive a fork)
START_METHOD = "fork" if sys.platform == "linux" else "spawn"
# the decoded bytes of one worker's chunk of files (and at most 256 files): what memory holds per
# chunk in flight (data.num_proc + 2 of them), whatever the size of the folder
CHUNK_BYTES = 4 * 2**20
# the cache folder's files: the pictures as uint8 rows (N, C, S, S), their labels and test flags
# (N,), and meta.json (the shape, the files left out), written last
PICTURES, LABELS, TEST, META = "pictures.u8", "labels.npy", "test.npy", "meta.json"
# what data.augment may name (see augment())
AUGMENTATIONS = ("hflip", "crop")
# pictures moved at once when a split is copied onto the accelerator (data_device)
DEVICE_COPY_ROWS = 4096


# ---- the folder's layout: cheap (names only, nothing decoded), also used to compose configs ------


def image_folder(path: str | os.PathLike) -> Path:
    """data.path as a folder that exists, else a GenkitError saying what to give."""
    folder = Path(path).expanduser()
    if not folder.exists():
        raise GenkitError(
            f"data.path={path} does not exist. Give the folder that holds your pictures (PNG, JPEG or WebP), "
            f"with one sub-folder per class if they have classes, e.g. data.path=~/photos."
        )
    if not folder.is_dir():
        raise GenkitError(f"data.path={path} is a file; give the folder that holds the pictures, e.g. {folder.parent}.")
    return folder


def _walk(folder: Path) -> Iterator[str]:
    """Relative names (with /) of the visible files under folder, in no set order. Linked folders
    are followed (data sets are often linked in), each real folder once (a link loop ends)."""
    seen = set()
    for parent, dirs, names in os.walk(folder, followlinks=True):
        stat = os.stat(parent)
        if (stat.st_dev, stat.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((stat.st_dev, stat.st_ino))
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = Path(parent).relative_to(folder)
        yield from ((rel / name).as_posix() for name in names if not name.startswith("."))


def _is_image(name: str) -> bool:
    return name.lower().endswith(SUFFIXES)


def _is_dir(entry: os.DirEntry) -> bool:
    """A folder (or a link to one); a link loop (`a -> a`) or a dangling link is not, and is then
    listed with the files that are left out, instead of stopping the run with ELOOP."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _subfolders(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if _is_dir(e) and not e.name.startswith("."))


def has_split_folders(folder: Path) -> bool:
    """Whether the folder brings its own splits: train/ and test/ sub-folders."""
    return {"train", "test"} <= set(_subfolders(folder))


def class_folders(folder: Path) -> list[str]:
    """The sorted first-level sub-folders that hold images (train/'s with train/ and test/)."""
    base = folder / "train" if has_split_folders(folder) else folder
    return [d for d in _subfolders(base) if any(map(_is_image, _walk(base / d)))]


def no_pictures(folder: Path) -> GenkitError:
    others = sum(1 for _ in _walk(folder))
    return GenkitError(
        f"data.path={folder} holds no pictures: genkit looked for {', '.join(SUFFIXES)} files (any case) in it "
        f"and its sub-folders and found {others} other files. Point data.path at a folder of pictures, with one "
        f"sub-folder per class if they have classes."
    )


def folder_classes(path: str | os.PathLike) -> list[str]:
    """The class names of a folder of images, read from its layout alone: the sorted class
    sub-folders, or, with none, the folder's own name (one class). Models read their class count
    from it when the config is composed (`${folder_classes:${data.path}}`), so a folder without
    pictures is refused there, before anything is built."""
    folder = image_folder(path)
    classes = class_folders(folder)
    if not classes and not any(map(_is_image, _walk(folder))):
        raise no_pictures(folder)
    return classes or [folder.resolve().name or "images"]


class Listing(NamedTuple):
    files: list[str]  # relative names of the image files, sorted
    labels: list[int]
    test: list[bool]  # in test/ (a folder with train/ and test/)
    left_out: list[tuple[str, str]]  # (relative name, why) of the other visible files


def list_images(folder: Path) -> Listing:
    split, classes = has_split_folders(folder), class_folders(folder)
    index = {name: i for i, name in enumerate(classes)}
    listing = Listing([], [], [], [])
    for rel in sorted(_walk(folder)):
        parts = rel.split("/")
        if not _is_image(rel):
            listing.left_out.append((rel, "not PNG, JPEG or WebP"))
            continue
        if split:
            if parts[0] not in ("train", "test"):
                listing.left_out.append((rel, "outside train/ and test/"))
                continue
            parts = parts[1:]
        if classes and (len(parts) < 2 or parts[0] not in index):
            listing.left_out.append((rel, "outside the class folders"))
            continue
        listing.files.append(rel)
        listing.labels.append(index[parts[0]] if classes else 0)
        listing.test.append(split and rel.startswith("test/"))
    return listing


# ---- decoding ------------------------------------------------------------------------------------

# JPEG's start-of-frame markers, which carry the picture's size (C4, C8 and CC are other segments)
_JPEG_FRAMES = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(f) -> tuple[int, int] | None:
    f.seek(2)  # after the start-of-image marker: segments, each FF <marker> <length> <data>
    while True:
        byte = f.read(1)
        if byte != b"\xff":
            return None
        while byte == b"\xff":  # fill bytes
            byte = f.read(1)
        if not byte or byte[0] in (0xD9, 0xDA):  # the end, or the scan data, before any frame
            return None
        if 0xD0 <= byte[0] <= 0xD8 or byte[0] == 0x01:  # markers without a length
            continue
        length = f.read(2)
        if len(length) < 2:
            return None
        if byte[0] in _JPEG_FRAMES:
            frame = f.read(5)  # precision, height, width
            return (int.from_bytes(frame[3:5], "big"), int.from_bytes(frame[1:3], "big")) if len(frame) == 5 else None
        f.seek(int.from_bytes(length, "big") - 2, os.SEEK_CUR)


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk, data = head[12:16], head[20:30]  # the first chunk of the RIFF container and its start
    if chunk == b"VP8X" and len(data) == 10:  # extended: the canvas, 24 bits each, minus one
        return 1 + int.from_bytes(data[4:7], "little"), 1 + int.from_bytes(data[7:10], "little")
    if chunk == b"VP8L" and len(data) >= 5 and data[0] == 0x2F:  # lossless: 14 bits each, minus one
        bits = int.from_bytes(data[1:5], "little")
        return 1 + (bits & 0x3FFF), 1 + (bits >> 14 & 0x3FFF)
    if chunk == b"VP8 " and len(data) == 10 and data[3:6] == b"\x9d\x01\x2a":  # lossy: 14 bits each
        return int.from_bytes(data[6:8], "little") & 0x3FFF, int.from_bytes(data[8:10], "little") & 0x3FFF
    return None


def picture_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of a PNG, JPEG or WebP file from its header alone (a few bytes, nothing
    decoded), else from Pillow's header reading; None when neither can tell."""
    with open(path, "rb") as f:
        head = f.read(30)
        if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR" and len(head) >= 24:
            return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        if head.startswith(b"\xff\xd8"):
            size = _jpeg_size(f)
        elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            size = _webp_size(head)
        else:
            size = None
    if size is not None:
        return size
    from PIL import Image

    try:  # another format under a picture's name (a GIF called .png): Pillow reads its header only
        with Image.open(path) as image:
            return image.size
    except Exception:  # Pillow cannot tell either (or refuses it as a bomb itself): left out
        return None


def _pillow_rgb(path: Path) -> torch.Tensor:
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        rgb = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)


def read_image(path: Path, channels: int, size: int) -> torch.Tensor:
    """One picture as uint8 (channels, size, size), upright as its EXIF orientation says. Always
    decoded as RGB, then made grey if asked (torchvision's WebP decoder cannot decode to grey)."""
    try:
        image = decode_image(str(path), mode=ImageReadMode.RGB, apply_exif_orientation=True)
    except RuntimeError:  # what torchvision's decoders refuse (e.g. some JPEG variants): Pillow
        image = _pillow_rgb(path)
    if image.dtype != torch.uint8:  # 16-bit PNGs
        image = F.to_dtype(image, torch.uint8, scale=True)
    image = F.center_crop(F.resize(image, size, antialias=True), size)  # shorter side -> size, then the middle
    return F.rgb_to_grayscale(image) if channels == 1 else image.contiguous()


def _read_or_why(path: Path, channels: int, size: int, max_pixels: int) -> torch.Tensor | str:
    """The picture, or why it is left out: its header's size is checked before it is decoded."""
    try:
        dims = picture_size(path)
        if dims is None:
            return "unreadable"
        if dims[0] * dims[1] > max_pixels:
            return f"{dims[0]} x {dims[1]} pixels, over data.max_pixels={max_pixels}"
        return read_image(path, channels, size)
    except Exception:  # corrupt, truncated, or not an image at all: left out, named by the caller
        return "unreadable"


def _init_worker() -> None:
    torch.set_num_threads(1)  # one core per worker: data.num_proc says how many


def decode_files(paths: Sequence[str], channels: int, size: int, max_pixels: int) -> tuple[np.ndarray, list]:
    """A chunk of files decoded: the readable ones as uint8 (n, C, S, S), in order, and for every
    file None or why it is left out. Runs in a worker process, or here for small folders."""
    pictures, whys = [], []
    for path in paths:
        picture = _read_or_why(Path(path), channels, size, max_pixels)
        whys.append(picture if isinstance(picture, str) else None)
        if not isinstance(picture, str):
            pictures.append(picture.numpy())
    return (np.stack(pictures) if pictures else np.empty((0, channels, size, size), np.uint8)), whys


def files_per_chunk(channels: int, size: int) -> int:
    return max(1, min(256, CHUNK_BYTES // (channels * size * size)))


def _decoded_chunks(chunks: list[list[str]], settings: tuple, num_proc: int) -> Iterator[tuple[np.ndarray, list]]:
    """decode_files of each chunk, in order: here, or in num_proc worker processes with at most
    one chunk per worker and two more in flight (this process never holds more than those)."""
    if num_proc == 1:
        return _decoded_here(chunks, settings)
    context = multiprocessing.get_context(START_METHOD)
    pool = concurrent.futures.ProcessPoolExecutor(num_proc, mp_context=context, initializer=_init_worker)
    # the first chunks are handed out now, which starts every worker at once (forked ones: before a
    # progress display starts a thread of its own in this process)
    waiting = deque(pool.submit(decode_files, chunk, *settings) for chunk in chunks[: num_proc + 2])
    return _decoded_there(pool, waiting, chunks[num_proc + 2 :], settings, num_proc)


def _decoded_here(chunks: list[list[str]], settings: tuple) -> Iterator[tuple[np.ndarray, list]]:
    threads = torch.get_num_threads()
    # one thread, as in the workers: PyTorch's threads cost more than they bring on pictures this small (a
    # 128 x 128 channels-last copy took 8 ms with 2 threads, 0.08 ms with one, on a 2-core machine)
    torch.set_num_threads(1)
    try:
        yield from (decode_files(chunk, *settings) for chunk in chunks)
    finally:
        torch.set_num_threads(threads)


def _decoded_there(
    pool, waiting: deque, rest: list[list[str]], settings: tuple, num_proc: int
) -> Iterator[tuple[np.ndarray, list]]:
    try:
        for chunk in rest:
            result = waiting.popleft().result()
            waiting.append(pool.submit(decode_files, chunk, *settings))
            yield result
        while waiting:
            yield waiting.popleft().result()
    except concurrent.futures.process.BrokenProcessPool:
        raise GenkitError(
            f"A worker process decoding the pictures stopped without a word, most often killed for memory "
            f"({num_proc} processes were decoding). Run again with fewer, e.g. "
            f"data.num_proc={max(1, num_proc // 2)}; the unfinished cache is never used."
        ) from None
    finally:  # also on an error or an interrupt: the workers stop instead of decoding the rest
        pool.shutdown(cancel_futures=True)


def decode_folder(
    folder: Path, listing: Listing, channels: int, size: int, max_pixels: int, out: Path, num_proc: int = 1
) -> tuple[list[int], list[tuple[str, str]]]:
    """The listed pictures decoded and appended to the file `out` as uint8 rows (C, S, S), in the
    listing's order, chunk by chunk; returns the listing's indices of the pictures written and
    (name, why) of the files left out. Folders of PARALLEL_FROM files or more are decoded in
    num_proc worker processes."""
    per_chunk = files_per_chunk(channels, size)
    paths = [str(folder / rel) for rel in listing.files]
    chunks = [paths[start : start + per_chunk] for start in range(0, len(paths), per_chunk)]
    procs = max(1, min(num_proc, len(chunks))) if len(paths) >= PARALLEL_FROM else 1
    decoded = _decoded_chunks(chunks, (channels, size, max_pixels), procs)
    if len(paths) > PROGRESS_FROM:
        decoded = tracked(decoded, len(chunks), f"decoding the pictures of {folder} ({procs} processes): chunk")
    kept, left_out, start = [], [], 0
    with open(out, "wb") as f:
        for pictures, whys in decoded:
            f.write(pictures.data)
            for i, why in enumerate(whys, start):
                if why is None:
                    kept.append(i)
                else:
                    left_out.append((listing.files[i], why))
            start += len(whys)
        f.flush()
        os.fsync(f.fileno())  # on disk before the folder is renamed into a cache
    left_out.sort(key=lambda left: left[1] == "unreadable")  # too big first: those a user would not expect
    return kept, left_out


class DecodedFolder:
    """A complete cache folder: the pictures (opened as a memory map only when asked), their
    labels and test flags, and the files left out. ValueError when its files do not agree."""

    def __init__(self, path: Path):
        meta = json.loads((path / META).read_text())
        self.path, self.shape = path, tuple(meta["shape"])  # (N, C, S, S)
        self.left_out = [tuple(left) for left in meta["left_out"]]
        self.labels, self.test = np.load(path / LABELS), np.load(path / TEST)
        size = (path / PICTURES).stat().st_size
        if size != int(np.prod(self.shape)) or not len(self.labels) == len(self.test) == self.shape[0]:
            raise ValueError(f"{PICTURES} holds {size} bytes for pictures of shape {self.shape}")

    def __len__(self) -> int:
        return self.shape[0]


class PictureRows(Dataset):
    """Some rows of a decoded folder's pictures (its split), read from the file per batch through a
    memory map and scaled to [-1, 1]: memory holds a batch, not the set. DataLoader workers receive
    the file's name and the rows, not the pictures."""

    def __init__(self, decoded: DecodedFolder, rows: np.ndarray):
        self.file, self.shape, self.rows = decoded.path / PICTURES, decoded.shape, rows
        self.labels = torch.from_numpy(decoded.labels[rows]).long()

    def __len__(self) -> int:
        return len(self.rows)

    def pictures(self, indices) -> torch.Tensor:
        """uint8 (B, C, S, S) of these items, in their order. Read in file order (sorted), which
        the disk and the page cache serve fastest, then put back in the batch's order."""
        rows = self.rows[np.asarray(indices, dtype=np.int64)]
        order = np.argsort(rows, kind="stable")
        batch = np.empty((len(rows), *self.shape[1:]), np.uint8)
        # a map of its own for each batch, closed after it (as nanoGPT maps its tokens): the pages of a map
        # kept open count in this process's memory as batches touch them, 3.6 GB after 200 random batches
        # of 100,000 pictures at 128 px (Linux 6.18 maps whole read-ahead folios), against 0.1 GB at most
        pictures = np.memmap(self.file, np.uint8, "r", shape=self.shape)
        batch[order] = pictures[rows[order]]
        return torch.from_numpy(batch)

    def __getitem__(self, i: int):
        return self.pictures([i])[0].float() / 127.5 - 1.0, self.labels[i]

    def __getitems__(self, indices: Sequence[int]):
        idx = np.asarray(indices, dtype=np.int64)
        return self.pictures(idx).float().div_(127.5).sub_(1.0), self.labels[torch.from_numpy(idx)]

    @property
    def images(self) -> torch.Tensor:
        """The whole split as one uint8 tensor in memory, for what takes a split whole (genkit
        eval's domain classifier, genkit bench's hand-written loops); training never asks."""
        return self.pictures(np.arange(len(self.rows)))


def augment(x: torch.Tensor, kinds: Sequence[str], generator: torch.Generator) -> torch.Tensor:
    """A batch (B, C, H, W) augmented picture by picture, with random draws from `generator`.
    hflip: mirrored left to right with probability 1/2 (DDPM's and most GAN recipes' only
    augmentation); crop: a random H x W window of the picture padded by H // 8 pixels on each side
    with its edges reflected, i.e. shifted by up to an eighth of its size (torchvision's
    RandomCrop(size, padding=size // 8, padding_mode="reflect"); reflection leaves no black
    borders for a generator to learn)."""
    b, _, h, w = x.shape
    if "hflip" in kinds:
        flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if "crop" in kinds:
        pad = max(1, h // 8)
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="reflect")  # (B, C, H + 2p, W + 2p)
        shifts = torch.randint(0, 2 * pad + 1, (b, 2), generator=generator).tolist()
        # a slice per picture: a few times faster than one advanced-indexing gather of the batch
        x = torch.stack([padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(shifts)])
    return x


def augmentations(value) -> tuple[str, ...]:
    """data.augment as a tuple of AUGMENTATIONS, else a GenkitError saying what it takes."""
    names = [value] if isinstance(value, str) else [] if value is None else value
    if isinstance(names, Sequence) and all(isinstance(name, str) and name in AUGMENTATIONS for name in names):
        return tuple(names)
    shown = f"[{', '.join(map(str, value))}]" if isinstance(value, Sequence) and not isinstance(value, str) else value
    raise GenkitError(
        f"data.augment={shown!s} is not a list of augmentations: genkit flips or crops each training batch on the fly "
        f"with data.augment=[hflip] (a random left-right mirror, as DDPM trains), [crop] (a random shift by up to an "
        f"eighth of the picture, edges reflected) or [hflip,crop]; data.augment=[] (the default) trains on the "
        f"pictures as they are."
    )


# ---- the data module -------------------------------------------------------------------------------


class ImageFolderDataModule(ImageDataModule):
    """ImageDataModule over a folder of pictures (see the module docstring for the layouts).

    class_names / num_classes come with the config (the folder's class sub-folders, read when it is
    composed); here they only name the labels, which follow the sorted sub-folders. Nothing is read
    from the folder until prepare_data / setup, so a checkpoint samples without it."""

    file_keys = ("path",)

    def __init__(
        self,
        path: str,
        name: str = "image_folder",
        image_size: int = 64,
        channels: int = 3,
        val_size: int | float = 0.05,
        split_seed: int = 12345,
        seed: int = 12345,
        batch_size: int = 64,
        eval_batch_size: int = 64,
        num_workers: int = 0,
        max_device_batch: int | None = None,
        on_device: str | bool = "auto",
        num_classes: int = 1,
        class_names: list[str] | None = None,
        cache_dir: str | None = None,
        root: str | None = None,
        classifier_epochs: int = 4,
        max_pixels: int = MAX_PIXELS,
        num_proc: int | None = None,
        augment: Sequence[str] | None = (),
    ):
        if channels not in (1, 3):
            raise GenkitError(
                f"data.channels={channels}: genkit reads a folder of pictures as colour (data.channels=3) or grey "
                f"(data.channels=1) images."
            )
        if not isinstance(image_size, int) or image_size < 8:
            raise GenkitError(
                f"data.image_size={image_size} is too small: pictures are resized to image_size x image_size "
                f"pixels; pass 8 or more, e.g. data.image_size=32 or 64."
            )
        whole = isinstance(val_size, int) and not isinstance(val_size, bool)
        if not (whole and val_size >= 1) and not (isinstance(val_size, float) and 0 < val_size < 1):
            raise GenkitError(
                f"data.val_size={val_size} must be a fraction of the images between 0 and 1 (e.g. 0.05), or a "
                f"number of images of at least 1."
            )
        if not isinstance(max_pixels, int) or isinstance(max_pixels, bool) or max_pixels < 1:
            raise GenkitError(
                f"data.max_pixels={max_pixels!r} must be a whole number of pixels of at least 1: pictures with more "
                f"(width x height, read from the file's header) are left out before they are decoded. The default, "
                f"{MAX_PIXELS}, is Pillow's decompression-bomb limit; e.g. data.max_pixels=200000000 for large scans."
            )
        if num_proc is not None and (not isinstance(num_proc, int) or isinstance(num_proc, bool) or num_proc < 1):
            raise GenkitError(
                f"data.num_proc={num_proc!r} must be a whole number of at least 1: the worker processes that decode "
                f"the pictures once, e.g. data.num_proc=8; null (the default) takes one per core this process may use."
            )
        super().__init__(
            name=name, files={}, mirrors=[], root=root, val_size=0, split_seed=split_seed, seed=seed,
            batch_size=batch_size, eval_batch_size=eval_batch_size, num_workers=num_workers,
            max_device_batch=max_device_batch, on_device=on_device, channels=channels, image_size=image_size,
            num_classes=num_classes, class_names=class_names, classifier_epochs=classifier_epochs,
        )  # fmt: skip
        self.path, self.val_share, self.max_pixels = Path(path).expanduser(), val_size, max_pixels
        self.num_proc, self.augment = num_proc or default_num_proc(), augmentations(augment)
        self.cache_root = Path(cache_dir).expanduser() if cache_dir else default_data_root().parent / "image_folders"
        self._decoded: DecodedFolder | None = None
        self._cache: Path | None = None
        self._device: torch.device | None = None  # where setup put the splits (None: read from disk)

    def cache_folder(self, listing: Listing) -> Path:
        """Where this folder's decoded pictures are cached, named by a hash of what they follow from."""
        files = []
        for rel in listing.files:
            stat = os.stat(self.path / rel)
            files.append((rel, stat.st_size, stat.st_mtime_ns))
        key = json.dumps([CACHE_VERSION, self.channels, self.image_size, self.max_pixels, files])
        stem = re.sub(r"[^\w.-]", "_", self.path.resolve().name)
        return self.cache_root / f"{stem}-{hashlib.sha256(key.encode()).hexdigest()[:20]}"

    def _read(self) -> DecodedFolder:
        """The folder decoded into its cache (decoding it first when no complete cache matches)."""
        if self._decoded is not None:
            return self._decoded
        folder = image_folder(self.path)
        listing = list_images(folder)
        if not listing.files:
            raise no_pictures(folder)
        classes = folder_classes(folder)
        if len(classes) != self.num_classes:
            raise GenkitError(
                f"data.path={self.path} holds {len(classes)} classes now ({', '.join(classes)}), but the config "
                f"names {self.num_classes} (data.class_names={self.class_names}): the folder changed after the "
                f"config was composed. Start the command again."
            )
        self._cache = self.cache_folder(listing)
        decoded = self._load_cache()
        if decoded is None:
            try:
                self._cache.parent.mkdir(parents=True, exist_ok=True)
                # runs that start together (DDP ranks, a second command) wait for one decode
                with FileLock(str(self._cache.with_name(f".{self._cache.name}.lock"))):
                    decoded = self._load_cache() or self._write_cache(folder, listing)
            except OSError as err:
                needed = len(listing.files) * self.channels * self.image_size**2
                raise GenkitError(
                    f"Could not write the decoded pictures of {self.path} to {self._cache.parent} "
                    f"({err.strerror or err}): they take about {needed / 1e9:.2f} GB (data.image_size="
                    f"{self.image_size}, {len(listing.files)} files). Free space there, or point data.cache_dir at a "
                    f"writable folder with room; an unfinished cache is never used."
                ) from None
        left_out = [*decoded.left_out, *listing.left_out]
        if left_out:
            named = ", ".join(f"{rel} ({why})" for rel, why in left_out[:3])
            more = f" and {len(left_out) - 3} more" if len(left_out) > 3 else ""
            log.warning("Left out %d of the files under %s: %s%s.", len(left_out), folder, named, more)
        if len(decoded) == 0:
            rel, why = decoded.left_out[0]
            raise GenkitError(
                f"None of the {len(listing.files)} picture files under {self.path} could be decoded (e.g. "
                f"{rel}: {why}); they are damaged, not the images their names say, or larger than "
                f"data.max_pixels={self.max_pixels} allows (raise it if they are real pictures)."
            )
        self._decoded = decoded
        return decoded

    def _load_cache(self) -> DecodedFolder | None:
        if not (self._cache / META).is_file():  # meta.json is written last: no cache, or none complete
            return None
        try:
            return DecodedFolder(self._cache)
        except Exception as err:  # a damaged cache: decode again, and write it anew
            log.warning("The cache %s cannot be read (%s); decoding the pictures again.", self._cache, err)
            shutil.rmtree(self._cache, ignore_errors=True)
            return None

    def _write_cache(self, folder: Path, listing: Listing) -> DecodedFolder:
        """Decode into a partial folder beside the cache, then rename it into place (atomic: the
        cache appears whole or not at all). A partial folder left by an interrupted decode (the
        caller holds the lock, so no one is writing it) is started again."""
        partial = self._cache.with_name(f".{self._cache.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        needed = len(listing.files) * self.channels * self.image_size**2
        start = time.perf_counter()
        try:
            partial.mkdir(parents=True)
            free = shutil.disk_usage(partial).free
            if free < needed:
                raise OSError(errno.ENOSPC, f"{needed / 1e9:.2f} GB needed, {free / 1e9:.2f} GB free")
            kept, left_out = decode_folder(
                folder, listing, self.channels, self.image_size, self.max_pixels, partial / PICTURES, self.num_proc
            )
            np.save(partial / LABELS, np.asarray(listing.labels, dtype=np.int64)[kept])
            np.save(partial / TEST, np.asarray(listing.test, dtype=bool)[kept])
            shape = [len(kept), self.channels, self.image_size, self.image_size]
            meta = {"version": CACHE_VERSION, "key": self._cache.name, "shape": shape, "left_out": left_out}
            (partial / META).write_text(json.dumps(meta))
            os.replace(partial, self._cache)
        except OSError:  # a full disk, or a folder not writable: the caller says so
            shutil.rmtree(partial, ignore_errors=True)
            raise
        log.info("Decoded %d pictures of %s in %.1f s into %s", len(kept), folder, time.perf_counter() - start,
                 self._cache)  # fmt: skip
        return DecodedFolder(self._cache)

    def prepare_data(self) -> None:
        self._read()  # once per machine under DDP: the other processes read the cache

    def source_files(self) -> dict[str, Path]:
        """The cache's meta.json stands for the folder (it names the cache, whose name changes with
        every picture and setting): genkit eval keys its domain classifier by it."""
        self._read()
        return {self._cache.name: self._cache / META}

    def setup(self, stage: str | None = None) -> None:
        """The splits as rows of the cache: the training rows drawn as the in-memory sets draw
        them (a permutation by split_seed), read per batch from the file, or copied once onto the
        accelerator when the whole set fits in a tenth of its free memory (data.on_device)."""
        decoded = self._read()
        if self.train_set is None:
            trainval = np.flatnonzero(~decoded.test)
            n, share = len(trainval), self.val_share
            self.val_size = max(1, round(share * n)) if isinstance(share, float) else share
            if self.val_size >= n:
                raise GenkitError(
                    f"data.path={self.path} holds {n} readable training pictures, and data.val_size={share} takes "
                    f"{self.val_size} of them to validate on, leaving none to train on. Add pictures, or lower "
                    f"data.val_size."
                )
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed)).numpy()
            self._device = data_device(self.trainer, self.on_device, int(np.prod(decoded.shape)))
            self.train_set = self._split(decoded, trainval[order[self.val_size :]])
            self.val_set = self._split(decoded, trainval[order[: self.val_size]])
        if stage in ("test", "predict", None) and self.test_set is None:
            # no test/ folder: the test split is the validation split
            self.test_set = self._split(decoded, np.flatnonzero(decoded.test)) if decoded.test.any() else self.val_set

    def _split(self, decoded: DecodedFolder, rows: np.ndarray) -> Dataset:
        if self._device is None:
            return PictureRows(decoded, rows)
        # one uint8 copy on the accelerator, moved a few thousand pictures at a time
        on_disk = PictureRows(decoded, rows)
        images = torch.empty((len(rows), *decoded.shape[1:]), dtype=torch.uint8, device=self._device)
        for start in range(0, len(rows), DEVICE_COPY_ROWS):
            end = min(start + DEVICE_COPY_ROWS, len(rows))
            images[start:end] = on_disk.pictures(range(start, end)).to(self._device)
        return ImageTensors(images, on_disk.labels.to(self._device))

    def _workers(self) -> int:
        # worker processes cannot index tensors that live on the accelerator; rows on disk they can
        return self.num_workers if isinstance(self.train_set, PictureRows) else 0

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """data.augment on each training batch, where it lands (on the accelerator when there is
        one). Its random draws follow the run's seed, the process and the batch's place in the
        epoch, so a resumed run augments the batches it had not seen as the first run would have."""
        if not self.augment or self.trainer is None or not self.trainer.training:
            return batch
        x, y = batch
        place = (0, 0) if self._train_batches is None else (self._train_batches.epoch, self._train_batches.done)
        seed = hash((self.seed, self.trainer.global_rank, *place)) % 2**63
        return augment(x, self.augment, torch.Generator().manual_seed(seed)), y
