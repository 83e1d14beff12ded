"""A folder of the user's own pictures: `genkit train data=image_folder data.path=<folder>`.

Every PNG, JPEG and WebP file under data.path is decoded once (torchvision; Pillow for what its
decoders refuse), converted to data.channels (3: colour, 1: grey), its shorter side resized to
data.image_size (antialiased) and centre-cropped to a square. The uint8 result is cached under
data.cache_dir, keyed by the files' names, sizes and times and those settings, so that a second
run starts in seconds; from there on it is an ImageDataModule like MNIST.

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

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as F

from genkit.data.download import default_data_root
from genkit.data.images import ImageDataModule
from genkit.errors import GenkitError

log = logging.getLogger(__name__)

SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
# bump when what is cached (or how images are resized) changes, so old caches are not reused
CACHE_VERSION = 2
# the default data.max_pixels: Pillow's own decompression-bomb limit (Image.MAX_IMAGE_PIXELS),
# about 89.5 M pixels, a quarter of a GiB of RGBA
MAX_PIXELS = 1024 * 1024 * 1024 // 4 // 3
# folders with more files than this show their decoding progress
PROGRESS_FROM = 1000


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


def decode_folder(folder: Path, listing: Listing, channels: int, size: int, max_pixels: int = MAX_PIXELS) -> dict:
    """The listed images decoded, in threads (the decoders release the GIL); `left_out` names
    the files that were not, and why."""
    paths = [folder / rel for rel in listing.files]
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        images = pool.map(_read_or_why, paths, *([value] * len(paths) for value in (channels, size, max_pixels)))
        if len(paths) > PROGRESS_FROM:
            from genkit.console import tracked

            images = tracked(images, len(paths), f"decoding the images of {folder}:")
        images = list(images)
    good = [i for i, image in enumerate(images) if not isinstance(image, str)]
    empty = torch.empty(0, channels, size, size, dtype=torch.uint8)
    # too big first: of the files left out, those are the ones a user would not expect
    why = sorted(((rel, image) for rel, image in zip(listing.files, images, strict=True) if isinstance(image, str)),
                 key=lambda left: left[1] == "unreadable")  # fmt: skip
    return {
        "images": torch.stack([images[i] for i in good]) if good else empty,  # (N, C, S, S)
        "labels": torch.tensor([listing.labels[i] for i in good], dtype=torch.long),
        "test": torch.tensor([listing.test[i] for i in good], dtype=torch.bool),
        "left_out": why,
    }


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
        eval_batch_size: int = 256,
        num_workers: int = 0,
        max_device_batch: int | None = None,
        on_device: str | bool = "auto",
        num_classes: int = 1,
        class_names: list[str] | None = None,
        cache_dir: str | None = None,
        root: str | None = None,
        classifier_epochs: int = 4,
        max_pixels: int = MAX_PIXELS,
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
        super().__init__(
            name=name, files={}, mirrors=[], root=root, val_size=0, split_seed=split_seed, seed=seed,
            batch_size=batch_size, eval_batch_size=eval_batch_size, num_workers=num_workers,
            max_device_batch=max_device_batch, on_device=on_device, channels=channels, image_size=image_size,
            num_classes=num_classes, class_names=class_names, classifier_epochs=classifier_epochs,
        )  # fmt: skip
        self.path, self.val_share, self.max_pixels = Path(path).expanduser(), val_size, max_pixels
        self.cache_root = Path(cache_dir).expanduser() if cache_dir else default_data_root().parent / "image_folders"
        self._decoded: dict | None = None
        self._cache: Path | None = None

    def cache_file(self, listing: Listing) -> Path:
        """Where this folder's decoded images are cached, named by a hash of what they follow from."""
        files = []
        for rel in listing.files:
            stat = os.stat(self.path / rel)
            files.append((rel, stat.st_size, stat.st_mtime_ns))
        key = json.dumps([CACHE_VERSION, self.channels, self.image_size, self.max_pixels, files])
        stem = re.sub(r"[^\w.-]", "_", self.path.resolve().name)
        return self.cache_root / f"{stem}-{hashlib.sha256(key.encode()).hexdigest()[:20]}.pt"

    def _read(self) -> dict:
        """The whole folder decoded (images, labels, test flags), from the cache when it matches."""
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
        self._cache = self.cache_file(listing)
        decoded = self._load_cache()
        if decoded is None:
            start = time.perf_counter()
            decoded = decode_folder(folder, listing, self.channels, self.image_size, self.max_pixels)
            log.info("Decoded %d pictures of %s in %.1f s", len(decoded["labels"]), folder, time.perf_counter() - start)
            self._save_cache(decoded)
        left_out = [*decoded["left_out"], *listing.left_out]
        if left_out:
            named = ", ".join(f"{rel} ({why})" for rel, why in left_out[:3])
            more = f" and {len(left_out) - 3} more" if len(left_out) > 3 else ""
            log.warning("Left out %d of the files under %s: %s%s.", len(left_out), folder, named, more)
        if len(decoded["labels"]) == 0:
            rel, why = decoded["left_out"][0]
            raise GenkitError(
                f"None of the {len(listing.files)} picture files under {self.path} could be decoded (e.g. "
                f"{rel}: {why}); they are damaged, not the images their names say, or larger than "
                f"data.max_pixels={self.max_pixels} allows (raise it if they are real pictures)."
            )
        self._decoded = decoded
        return decoded

    def _load_cache(self) -> dict | None:
        try:
            return torch.load(self._cache, weights_only=True)
        except FileNotFoundError:
            return None
        except Exception as err:  # a damaged cache file: decode again, and write it anew
            log.warning("The cache %s cannot be read (%s); decoding the pictures again.", self._cache, err)
            return None

    def _save_cache(self, decoded: dict) -> None:
        # written whole or not at all: another process (a DDP rank, a second run) may read it
        tmp = self._cache.with_name(f".{self._cache.name}.{os.getpid()}.tmp")
        try:
            self._cache.parent.mkdir(parents=True, exist_ok=True)
            torch.save(decoded, tmp)
            os.replace(tmp, self._cache)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            log.warning("The decoded pictures were not cached (%s); the next run decodes them again.", err)

    def prepare_data(self) -> None:
        self._read()  # once per machine under DDP: the other processes read the cache

    def source_files(self) -> dict[str, Path]:
        """The decoded cache stands for the folder (its name changes with every picture): genkit
        eval keys its domain classifier by it. Without a cache, the picture files themselves."""
        self._read()
        if self._cache is not None and self._cache.is_file():
            return {self._cache.name: self._cache}
        return {rel: self.path / rel for rel in list_images(self.path).files}

    def _load(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        decoded = self._read()
        if split == "test" and not decoded["test"].any():
            # no test/ folder: the test split is the validation split (setup builds that first)
            if self.val_set is None:
                self.setup("fit")
            return self.val_set.images, self.val_set.labels
        keep = decoded["test"] if split == "test" else ~decoded["test"]
        return decoded["images"][keep], decoded["labels"][keep]

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            decoded = self._read()
            n = int((~decoded["test"]).sum())
            share = self.val_share
            self.val_size = max(1, round(share * n)) if isinstance(share, float) else share
            if self.val_size >= n:
                raise GenkitError(
                    f"data.path={self.path} holds {n} readable training pictures, and data.val_size={share} takes "
                    f"{self.val_size} of them to validate on, leaving none to train on. Add pictures, or lower "
                    f"data.val_size."
                )
        super().setup(stage)
        if self._decoded is not None and (self.test_set is not None or not self._decoded["test"].any()):
            self._decoded = None  # the splits hold what they need; _read() reads the cache again if asked
