"""Time genkit's hand-written GAN loop (genkit/models/reference/gan_loop.py) on MNIST, no Lightning:

python scripts/raw_gan_loop.py --epochs 1
"""

import argparse
import time

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from genkit.config_files import CONFIG_DIR
from genkit.data.images import ImageDataModule
from genkit.models.nets.dcgan import Discriminator, Generator
from genkit.models.reference.gan_loop import RawGANLoop


def load_images(data_root: str | None, device="cpu") -> torch.Tensor:
    """MNIST's 55,000 training images as one uint8 tensor (N, 1, 28, 28), via genkit's data config."""
    cfg = OmegaConf.load(CONFIG_DIR / "data" / "mnist.yaml")
    cfg.root, cfg.seed = data_root, 0
    dm: ImageDataModule = instantiate(cfg)
    dm.setup("fit")
    return dm.reference_data()["train"].to(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    loop = RawGANLoop(
        load_images(args.data_root, device),
        generator=Generator(64, 1, 28, 64),
        discriminator=Discriminator(1, 28, 64),
        batch_size=args.batch_size,
        device=device,
    )
    steps = int(args.epochs * len(loop.images) // args.batch_size)
    t0 = time.perf_counter()
    for it in range(1, steps + 1):
        d_loss, g_loss = loop.step()
        if it % 100 == 0 or it == steps:
            print(
                f"step {it}/{steps}: d_loss {d_loss:.3f} g_loss {g_loss:.3f} "
                f"{1000 * (time.perf_counter() - t0) / it:.1f} ms/step",
                flush=True,
            )
    print(f"{steps} steps in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
