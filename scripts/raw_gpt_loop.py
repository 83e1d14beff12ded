"""Train nanoGPT's CPU recipe on Tiny Shakespeare with genkit's hand-written GPT loop
(genkit/models/reference/gpt_loop.py), no Lightning:

    python scripts/raw_gpt_loop.py --steps 2000
"""

import argparse
import time

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from genkit.config import CONFIG_DIR
from genkit.models.reference.gpt_loop import RawGPTLoop


def load_ids(data_root: str | None, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tiny Shakespeare's train and val ids, through genkit's own data config and cache."""
    cfg = OmegaConf.load(CONFIG_DIR / "data" / "tinyshakespeare.yaml")
    cfg.root, cfg.pretrained_tokenizer, cfg.vocab_size, cfg.block_size, cfg.seed = data_root, None, 65, block_size, 0
    dm = instantiate(cfg)
    dm.setup()
    data = dm.reference_data()
    return data["train"], data["val"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--seed", type=int, default=1337)
    args = parser.parse_args()
    train_ids, val_ids = load_ids(args.data_root, 64)
    loop = RawGPTLoop(train_ids, val_ids, total_steps=args.steps, seed=args.seed)
    t0 = time.perf_counter()
    for it in range(1, args.steps + 1):
        loss = loop.step()
        if it % 250 == 0 or it == args.steps:
            print(f"step {it}: train loss {loss:.4f}  {1000 * (time.perf_counter() - t0) / it:.1f} ms/step", flush=True)
    print(f"val loss {loop.val_loss():.4f} after {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
