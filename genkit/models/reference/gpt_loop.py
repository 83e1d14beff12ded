"""A hand-written PyTorch training loop for genkit's GPT: the reference genkit is measured against.

The same network, optimiser, schedule and clipping as `model=lm`, but nanoGPT's loop: random
windows drawn with torch.randint, no Lightning. `scripts/raw_gpt_loop.py` runs nanoGPT's CPU
recipe with it.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from genkit.models.nets.transformer import Transformer
from genkit.runtime import autocasts_bf16


class RawGPTLoop:
    """nanoGPT's train.py reduced to its loop; `step()` is one optimiser step."""

    def __init__(
        self,
        train_ids,
        val_ids,
        *,
        vocab_size=65,
        block_size=64,
        batch_size=12,
        n_layer=4,
        n_head=4,
        n_embd=128,
        dropout=0.0,
        bias=False,
        gelu="none",
        lr=1e-3,
        min_lr=1e-4,
        warmup=100,
        total_steps=2000,
        weight_decay=0.1,
        betas=(0.9, 0.99),
        device="cpu",
        seed=1337,
        net: nn.Module | None = None,
        bf16: bool | None = None,
    ):
        """The network has the given sizes, or is `net` (a copy of a genkit GPT's, for `genkit bench`).
        bf16: autocast as genkit would on this device (None), or as told (nanoGPT's train.py: on
        CUDA only)."""
        torch.manual_seed(seed)
        self.train_ids, self.val_ids = train_ids.to(device), val_ids.to(device)
        self.T, self.B, self.device = block_size, batch_size, device
        if net is None:
            net = Transformer(vocab_size, block_size, n_layer, n_head, n_embd, dropout=dropout, bias=bias, gelu=gelu)
        self.net = net.to(device).train()
        decay = [p for p in self.net.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.net.parameters() if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        self.opt = torch.optim.AdamW(groups, lr=lr, betas=betas, fused=device != "cpu")
        self.lr, self.min_lr, self.warmup, self.total = lr, min_lr, warmup, total_steps
        self.device_type = torch.device(device).type
        self.bf16 = autocasts_bf16(self.device_type) if bf16 is None else bf16
        self.it = 0

    def lr_at(self, it: int) -> float:
        if it < self.warmup:
            return self.lr * (it + 1) / self.warmup
        progress = min((it - self.warmup) / max(self.total - self.warmup, 1), 1.0)
        return self.min_lr + (self.lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))

    def batch(self, split: str = "train"):
        ids = self.train_ids if split == "train" else self.val_ids
        ix = torch.randint(len(ids) - self.T - 1, (self.B,), device=self.device)
        window = ix[:, None] + torch.arange(self.T + 1, device=self.device)  # (B, T+1)
        chunk = ids[window]
        return chunk[:, :-1], chunk[:, 1:]

    def step(self) -> float:
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(self.it)
        x, y = self.batch()
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.bf16):
            logits, _ = self.net(x)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
        self.opt.step()
        self.it += 1
        return loss.item()

    @torch.no_grad()
    def estimate_loss(self, iters: int) -> dict[str, float]:
        """nanoGPT's estimate_loss: the mean loss of `iters` random batches of each split."""
        self.net.eval()
        out = {}
        for split in ("train", "val"):
            losses = []
            for _ in range(iters):
                x, y = self.batch(split)
                logits, _ = self.net(x)
                losses.append(F.cross_entropy(logits.flatten(0, 1), y.flatten()).item())
            out[split] = sum(losses) / len(losses)
        self.net.train()
        return out

    @torch.no_grad()
    def val_loss(self) -> float:
        """Per-token loss over the whole val split in contiguous windows (as genkit evaluates)."""
        self.net.eval()
        ids, total, count = self.val_ids, 0.0, 0
        for start in range(0, len(ids) - 1, self.T * 256):
            chunk = ids[start : start + self.T * 256 + 1]
            n = (len(chunk) - 1) // self.T * self.T
            if n == 0:
                break
            x, y = chunk[:n].view(-1, self.T), chunk[1 : n + 1].view(-1, self.T)
            logits, _ = self.net(x)
            total += F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").item()
            count += y.numel()
        self.net.train()
        return total / count
