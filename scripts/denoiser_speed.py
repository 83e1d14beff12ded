"""genkit's U-Net against diffusers' UNet2DModel (model/denoiser=diffusers_unet) at the same size:
parameters, one training step and one sampling step, on this machine's CPU.

python scripts/denoiser_speed.py [--base 16] [--batch 128]

The size is diffusion_mnist_cpu's (base 16, levels (1, 2, 2), attention at level 2, 28 pixels).
The two are the same network but for the SiLU diffusers applies to the time embedding before
each block, so they have the same parameter count; the time difference is the implementation's.
"""

import argparse
import time

import torch

from genkit.models.nets.diffusers_unet import DiffusersUNet
from genkit.models.nets.unet import UNet


def seconds_per_call(fn, warmup: int = 2, repeat: int = 5) -> float:
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def timed_steps(net: torch.nn.Module, batch: int) -> tuple[float, float]:
    """Seconds per training step (Adam) and per sampling step of 64 images."""
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    x, t = torch.randn(batch, 1, 28, 28), torch.randint(0, 1000, (batch,))

    def train_step():
        loss = net(x, t).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def sample_step():
        with torch.no_grad():
            net(x[:64], t[:64])

    return seconds_per_call(train_step), seconds_per_call(sample_step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, default=16)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    size = dict(channels=1, base=args.base, channel_mults=(1, 2, 2), attention_levels=(2,), dropout=0.0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for cls in (UNet, DiffusersUNet):
        torch.manual_seed(0)
        net = cls(**size, image_size=28)
        train, sample = timed_steps(net, args.batch)
        print(
            f"{cls.__name__:13s} {sum(p.numel() for p in net.parameters()):,} parameters  "
            f"train step (batch {args.batch}) {train * 1000:.0f} ms  sampling step (64 images) {sample * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
