"""A hand-written PyTorch training loop for genkit's GAN: the reference genkit is measured against.

Same networks (genkit.models.nets.dcgan), same losses and Adam settings as `model=gan`, the same
MNIST files, but pytorch/examples' dcgan loop: a DataLoader over a TensorDataset-free batch
gather, no Lightning. Run it directly to time one epoch:

    python scripts/raw_gan_loop.py --epochs 1
"""

import argparse
import time

import torch

from genkit.data.images import ImageDataModule
from genkit.models.gan import discriminator_loss, generator_loss
from genkit.models.nets.dcgan import Discriminator, Generator

MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}


def load_images(data_root: str | None, device="cpu") -> torch.Tensor:
    """MNIST's 55,000 training images as one uint8 tensor (N, 1, 28, 28)."""
    dm = ImageDataModule(
        name="mnist", files=MNIST_FILES, mirrors=["https://ossci-datasets.s3.amazonaws.com/mnist/"], root=data_root
    )
    dm.setup("fit")
    return dm.train_set.images.to(device)


class RawGANLoop:
    """One `step()` = one discriminator and one generator update on a batch, as in pytorch/examples."""

    def __init__(
        self,
        images: torch.Tensor,
        *,
        batch_size=128,
        latent_dim=64,
        width=64,
        lr=2e-4,
        loss="non_saturating",
        device="cpu",
        seed=0,
    ):
        torch.manual_seed(seed)
        self.images, self.batch_size, self.device = images, batch_size, device
        self.latent_dim, self.loss = latent_dim, loss
        self.G = Generator(latent_dim, 1, 28, width).to(device)
        self.D = Discriminator(1, 28, width).to(device)
        fused = torch.device(device).type == "cuda"
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=lr, betas=(0.5, 0.999), fused=fused)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=lr, betas=(0.5, 0.999), fused=fused)
        self.order, self.pos = torch.randperm(len(images), device=images.device), 0
        self.device_type = torch.device(device).type

    def batch(self) -> torch.Tensor:
        if self.pos + self.batch_size > len(self.order):
            self.order, self.pos = torch.randperm(len(self.images), device=self.images.device), 0
        idx = self.order[self.pos : self.pos + self.batch_size]
        self.pos += self.batch_size
        return self.images[idx].to(self.device).float() / 127.5 - 1

    def step(self) -> tuple[float, float]:
        real = self.batch()
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.device_type == "cuda"):
            fake = self.G(torch.randn(real.shape[0], self.latent_dim, device=self.device))
            d_loss = discriminator_loss(self.loss, self.D(real), self.D(fake.detach()))
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.device_type == "cuda"):
            g_loss = generator_loss(self.loss, self.D(fake))
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        return d_loss.item(), g_loss.item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    loop = RawGANLoop(load_images(args.data_root, device), batch_size=args.batch_size, device=device)
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
