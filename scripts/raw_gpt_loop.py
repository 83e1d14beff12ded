"""nanoGPT's CPU recipe on Tiny Shakespeare, end to end, as a plain PyTorch loop: the script a
user would copy instead of genkit (genkit/models/reference/gpt_loop.py, no Lightning).

    python scripts/raw_gpt_loop.py --steps 2000 --out /tmp/raw

It does what nanoGPT's train.py does with that recipe: every 250 steps (and at step 0) it
estimates the train and val loss on 20 random batches each and saves a checkpoint (model and
optimizer) when the val estimate improves. At the end it scores the whole val split exactly, as
`genkit train` validates, and prints one JSON line: {"val_loss": ..., "wall_s": ...}, wall
from the start of this process. `scripts/time_to_quality.py` runs it beside genkit.
"""

import time

START = time.time()  # before the imports: a user waits for them too

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from genkit.config_files import CONFIG_DIR  # noqa: E402
from genkit.models.reference.gpt_loop import RawGPTLoop  # noqa: E402


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
    parser.add_argument("--eval-interval", type=int, default=250)
    parser.add_argument("--eval-iters", type=int, default=20)
    parser.add_argument("--data-root", default=None, help="default: GENKIT_DATA_DIR, as genkit")
    parser.add_argument("--out", default="raw_gpt_out", help="where the checkpoint goes")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument(
        "--bf16", action="store_true", help="bf16 autocast on a CPU too (nanoGPT's train.py: on CUDA only)"
    )
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train_ids, val_ids = load_ids(args.data_root, 64)
    loop = RawGPTLoop(train_ids, val_ids, total_steps=args.steps, seed=args.seed, bf16=args.bf16)
    best = float("inf")
    t0 = time.perf_counter()
    for it in range(args.steps + 1):
        if it % args.eval_interval == 0 or it == args.steps:
            losses = loop.estimate_loss(args.eval_iters)
            print(f"step {it}: train {losses['train']:.4f}, val {losses['val']:.4f}", flush=True)
            if losses["val"] < best:
                best = losses["val"]
                if it > 0:
                    torch.save(
                        {"model": loop.net.state_dict(), "optimizer": loop.opt.state_dict(), "step": it},
                        out / "ckpt.pt",
                    )
        if it == args.steps:
            break
        loop.step()
    val_loss = loop.val_loss()
    steps_s = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "val_loss": val_loss,
                "steps": args.steps,
                "loop_s": round(steps_s, 2),
                "wall_s": round(time.time() - START, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
