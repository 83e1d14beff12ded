"""Tokens per second of GPT generation from a checkpoint, with and without the KV cache.

python scripts/generation_speed.py <run dir or .ckpt> [--n 8] [--new 200] [--rounds 5]
"""

import argparse
import statistics
import time

import torch

from genkit.checkpoints.files import resolve_checkpoint
from genkit.training.restore import load_model


def tokens_per_s(model, prompt: list[int], n: int, new: int, use_cache: bool) -> float:
    generator = torch.Generator(device=model.device).manual_seed(0)
    start = time.perf_counter()
    model.sample(n, generator=generator, prompt_ids=prompt, max_new_tokens=new, use_cache=use_cache)
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    return n * new / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt")
    parser.add_argument("--n", type=int, default=8, help="sequences generated at once")
    parser.add_argument("--new", type=int, default=200, help="new tokens per sequence")
    parser.add_argument("--rounds", type=int, default=1, help="measure this often; the median is printed")
    args = parser.parse_args()
    model, datamodule, _ = load_model(resolve_checkpoint(args.ckpt, "outputs"))
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    prompt = datamodule.prompt_ids("")
    tokens_per_s(model, prompt, args.n, 8, True)  # warm up
    for use_cache in (True, False):
        rate = statistics.median(tokens_per_s(model, prompt, args.n, args.new, use_cache) for _ in range(args.rounds))
        print(
            f"{'with' if use_cache else 'without'} KV cache: {rate:,.0f} tokens/s "
            f"({args.n} sequences x {args.new} new tokens, block_size {model.net.block_size}, median of {args.rounds})"
        )


if __name__ == "__main__":
    main()
