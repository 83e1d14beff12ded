"""Padding or packing for prompt -> completion batches (data=pairs), and pairs training against
plain text training at the same model size, in training tokens per second.

python scripts/pairs_padding_speed.py [--records 2048] [--steps 20] [--file <supersenses.train.jsonl>]

Four ways to feed the same records to the same GPT (4 layers, 128 wide, BPE of 2,048 tokens
fitted on them), each timed for --steps AdamW steps after 3 warm-up steps, in fp32:
- padded: batches of 32 shuffled records right-padded to their longest (data.group_by_length=false);
- grouped: the same, records of similar length batched together (data=pairs' default);
- packed: the records' tokens end to end in rows of block_size, causal attention over the whole
  row (no per-record mask): what packing costs at best, since a block-diagonal mask only adds
  work; the tokens per second count real tokens in both;
- text: the same rows scored on every token, as data=text trains (plain language modelling).
Prints the share of padding and tokens per second of each.
"""

import argparse
import json
import os
import random
import time
from pathlib import Path

import torch

from genkit.data.batching import ShuffledBatches
from genkit.data.pair_rows import PairBatches
from genkit.data.tokenizers import BPETokenizer
from genkit.loss_targets import IGNORE_INDEX
from genkit.models.linear_cross_entropy import linear_cross_entropy
from genkit.models.nets.transformer import Transformer


def timed(net, batches, steps: int) -> float:
    """Seconds per step of forward, backward and AdamW over `batches` (cycled)."""
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    for i in range(steps + 3):
        if i == 3:
            start = time.perf_counter()
        x, y = batches[i % len(batches)]
        h, _ = net.hidden(x)
        loss = linear_cross_entropy(h.flatten(0, 1), net.lm_head.weight, y.flatten(), IGNORE_INDEX)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = os.environ.get("GENKIT_DATA_DIR", "../shared/data")
    parser.add_argument("--file", default=f"{data}/wordnet/supersenses.train.jsonl")
    parser.add_argument("--records", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--block-size", type=int, default=160)
    args = parser.parse_args()
    random.seed(0)
    torch.manual_seed(0)
    rows = [json.loads(line) for line in Path(args.file).read_text().splitlines()][: args.records]
    pairs = [(r["text"] + " =>", r["label"]) for r in rows]
    tok = BPETokenizer.fit("\n".join(p + c for p, c in pairs), 2048)
    eot, T = tok.eot_id, args.block_size
    encoded = []
    for p, c in pairs:
        prompt = [eot, *tok.encode(p)]
        encoded.append((len(prompt), (prompt + tok.encode(c) + [eot])[: T + 1]))
    random.shuffle(encoded)
    dataset = PairBatches(encoded, eot)
    padded = [dataset.__getitems__(range(i, i + 32)) for i in range(0, len(encoded) - 31, 32)]
    lengths = torch.tensor([len(ids) for _, ids in encoded])
    grouped = [dataset.__getitems__(b) for b in ShuffledBatches(len(encoded), 32, seed=0, lengths=lengths)]
    real = sum(int((y != IGNORE_INDEX).sum()) for _, y in padded)  # completion targets
    positions = sum(x.numel() for x, _ in padded)
    grouped_positions = sum(x.numel() for x, _ in grouped)
    tokens = sum(len(ids) - 1 for _, ids in encoded)
    stream = torch.tensor([t for _, ids in encoded for t in ids[:-1]])
    n = len(stream) // (T + 1) * (T + 1)
    windows = stream[:n].view(-1, T + 1)
    per_batch = max(1, tokens // len(padded) // T)  # rows of T holding a padded batch's real tokens
    packed_text = [(w[:, :-1], w[:, 1:]) for w in windows.split(per_batch)]
    net = Transformer(vocab_size=2048, block_size=T, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False,
                      gelu="none")  # fmt: skip
    t_pad = timed(net, padded, args.steps)
    t_group = timed(net, grouped, args.steps)
    t_pack = timed(net, packed_text, args.steps)
    pad_share, group_pad_share = 1 - tokens / positions, 1 - tokens / grouped_positions
    print(f"records {len(encoded)}, tokens {tokens}, completion targets {real}, threads {torch.get_num_threads()}")
    print(f"padded: {positions / len(padded):.0f} positions a batch, {pad_share:.1%} padding, "
          f"{tokens / len(padded) / t_pad:,.0f} real tokens/s ({t_pad * 1000:.0f} ms a step)")  # fmt: skip
    print(f"grouped: {grouped_positions / len(grouped):.0f} positions a batch, {group_pad_share:.1%} padding, "
          f"{tokens / len(grouped) / t_group:,.0f} real tokens/s ({t_group * 1000:.0f} ms a step)")  # fmt: skip
    row_tokens = packed_text[0][0].numel()
    print(f"packed (text windows): {row_tokens} positions a batch, 0% padding, {row_tokens / t_pack:,.0f} tokens/s "
          f"({t_pack * 1000:.0f} ms a step); the same rows are plain text training")  # fmt: skip


if __name__ == "__main__":
    main()
