"""Write a folder of generated colour PNGs, one sub-folder per class, for `data=image_folder`.

python scripts/make_image_folder.py <out dir> [--n 5000] [--size 64] [--classes 3] [--seed 0]

Each class is one shape in one colour (red circles, green squares, blue triangles, ...) at a
random place and size on a random pale background, so that a model has something to learn and a
grid of samples shows at a glance whether it did. Used by tests/unit/data/test_image_folder.py and to time
the decoding and the cache.
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 220), "orange": (240, 150, 20),
           "purple": (140, 50, 190), "teal": (20, 160, 160)}  # fmt: skip
SHAPES = ("circle", "square", "triangle", "cross", "diamond")


def class_names(classes: int) -> list[str]:
    """`red_circle`, `green_square`, ...: 6 colours x 5 shapes (coprime), so up to 30 distinct classes."""
    if not 1 <= classes <= len(COLOURS) * len(SHAPES):
        raise ValueError(f"--classes must be from 1 to {len(COLOURS) * len(SHAPES)}, got {classes}")
    colours = list(COLOURS)
    return [f"{colours[k % len(colours)]}_{SHAPES[k % len(SHAPES)]}" for k in range(classes)]


def shape_image(name: str, width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """One picture of class `name` (`<colour>_<shape>`), width x height pixels."""
    colour, shape = name.split("_")
    image = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(200, 256, 3)))
    draw = ImageDraw.Draw(image)
    side = min(width, height)
    r = side * rng.uniform(0.2, 0.35)
    cx, cy = width * rng.uniform(0.35, 0.65), height * rng.uniform(0.35, 0.65)
    fill = tuple(int(np.clip(v + rng.integers(-20, 21), 0, 255)) for v in COLOURS[colour])
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    elif shape == "cross":
        draw.rectangle((cx - r, cy - r / 3, cx + r, cy + r / 3), fill=fill)
        draw.rectangle((cx - r / 3, cy - r, cx + r / 3, cy + r), fill=fill)
    else:
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)
    return image


def write_image_folder(out: Path, n: int, size: int = 64, classes: int = 3, seed: int = 0) -> list[Path]:
    """n PNGs of size x size, classes in turn, as out/<class>/<i>.png."""
    rng = np.random.default_rng(seed)
    names = class_names(classes)
    paths = []
    for i in range(n):
        name = names[i % classes]
        path = Path(out) / name / f"{i:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        shape_image(name, size, size, rng).save(path)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--n", type=int, default=5000, help="pictures in all")
    parser.add_argument("--size", type=int, default=64, help="width and height in pixels")
    parser.add_argument("--classes", type=int, default=3, help="sub-folders, one shape and colour each")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    paths = write_image_folder(args.out, args.n, args.size, args.classes, args.seed)
    print(f"wrote {len(paths)} PNGs of {args.size}x{args.size} in {args.classes} class folders under {args.out}")


if __name__ == "__main__":
    main()
