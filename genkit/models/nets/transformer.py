"""A decoder-only transformer in the GPT-2 layout (Radford et al. 2019).

Pre-LayerNorm blocks, GELU MLP, causal attention through scaled_dot_product_attention (flash
kernels on GPUs), learned positions, input and output embeddings tied, GPT-2 initialisation.
`forward` takes an optional KV cache (genkit.models.nets.kv_cache) so generation costs one
position per new token, in rows that may have read different numbers of tokens.
"""

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from genkit.errors import GenkitError
from genkit.models.nets.hf_gpt2 import load_gpt2_weights
from genkit.models.nets.kv_cache import KVCache


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, dropout: float, bias: bool):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} must be divisible by n_head={n_head}")
        self.n_head = n_head
        self.qkv = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.dropout = dropout
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, store: Callable | None = None, mask=None):
        """store(keys, values): writes the new positions' keys and values into this layer's cache
        and returns all of them (KVCache.store), None without a cache; mask: which keys each new
        position sees (KVCache.attention_mask), None when it sees all of them."""
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # (B, T, C) -> (B, nh, T, hs)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        past = store is not None
        if past:
            k, v = store(k, v)
        dropout = self.dropout if self.training else 0.0
        # no cache: causal within these positions; with one, the mask says (None: one new position
        # of unpadded rows, which attends to everything cached)
        y = attention(q, k, v, attn_mask=mask, is_causal=not past, dropout_p=dropout)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, nh, T, hs) -> (B, T, C)
        return self.resid_dropout(self.proj(y)), (k, v)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **options) -> torch.Tensor:
    """F.scaled_dot_product_attention, in fp32 on CPUs under bf16 autocast: the CPU flash kernel is
    slower in bf16 than in fp32 on every CPU measured, so a step with fp32 attention and bf16
    matmuls beats both all-bf16 and all-fp32 (the step times: docs/benchmarks/performance.md,
    "The figures behind the code")."""
    if q.device.type == "cpu" and q.dtype != torch.float32 and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), **options).to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, **options)


class MLP(nn.Module):
    def __init__(self, n_embd: int, dropout: float, bias: bool, gelu: str = "tanh"):
        super().__init__()
        self.fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.gelu = gelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x), approximate=self.gelu)))


class Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int, dropout: float, bias: bool, eps: float, gelu: str = "tanh"):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, eps=eps, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias)
        self.ln_2 = nn.LayerNorm(n_embd, eps=eps, bias=bias)
        self.mlp = MLP(n_embd, dropout, bias, gelu)

    def forward(self, x: torch.Tensor, store=None, mask=None):
        a, present = self.attn(self.ln_1(x), store, mask)
        x = x + a
        return x + self.mlp(self.ln_2(x)), present


class Transformer(nn.Module):
    # the layers LoRA adapts unless finetune.lora.targets names others: the attention and MLP
    # projections of every block (LoRA's usual choice for GPT-2)
    lora_targets = ("blocks.*.attn.qkv", "blocks.*.attn.proj", "blocks.*.mlp.fc", "blocks.*.mlp.proj")

    def __init__(
        self,
        vocab_size: int,
        block_size: int = 256,
        n_layer: int = 6,
        n_head: int = 6,
        n_embd: int = 384,
        dropout: float = 0.0,
        bias: bool = True,
        layer_norm_eps: float = 1e-5,
        gelu: str = "tanh",
    ):
        """gelu: the MLP's GELU (Hendrycks & Gimpel 2016), "tanh" (GPT-2's approximation, so its
        weights compute what they were trained to) or "none" (exact, as nanoGPT; on CPUs ~3.6x
        faster than the tanh form, which is ~15% of a small model's step)."""
        super().__init__()
        if gelu not in ("tanh", "none"):
            raise GenkitError(
                f"model.net.gelu={gelu!r} is not a form of GELU: choose tanh (GPT-2's approximation) or none "
                f"(the exact GELU)."
            )
        self.vocab_size, self.block_size = vocab_size, block_size
        self.n_layer, self.n_head, self.n_embd = n_layer, n_head, n_embd
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(n_embd, n_head, dropout, bias, layer_norm_eps, gelu) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, eps=layer_norm_eps, bias=bias)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying (Press & Wolf 2017)
        self.apply(self._init_weights)
        # GPT-2: residual projections scaled by 1/sqrt(2 * n_layer)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def load_pretrained(self, name_or_path: str) -> None:
        """model.init_from=<Hugging Face GPT-2 id or folder>: its weights, into this network."""
        load_gpt2_weights(self, name_or_path)

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None) -> tuple[torch.Tensor, KVCache]:
        """idx (B, T) -> logits (B, T, vocab) and the cache extended by these T positions."""
        h, presents = self.hidden(idx, cache)
        return self.lm_head(h), presents

    def hidden(self, idx: torch.Tensor, cache: KVCache | None = None) -> tuple[torch.Tensor, KVCache]:
        """idx (B, T) -> final hidden states (B, T, n_embd), before the output layer, and the cache
        extended by these T positions (each row's positions continue its own cached ones)."""
        B, T = idx.shape
        longest = 0 if cache is None else cache.width
        if longest + T > self.block_size:
            raise ValueError(f"{longest + T} positions exceed block_size={self.block_size}")
        if cache is None:
            pos, mask = torch.arange(T, device=idx.device), None
        else:
            pos, mask = cache.positions(T), cache.attention_mask(T)
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C)
        if cache is None:
            presents = []
            for block in self.blocks:
                x, present = block(x, None, None)
                presents.append(present)
            return self.ln_f(x), KVCache(presents, torch.full((B,), T, device=idx.device), T)
        cache.reserve(T)
        for i, block in enumerate(self.blocks):
            x, _ = block(x, functools.partial(cache.store, i), mask)
        return self.ln_f(x), cache.extended(T)

    @property
    def context_length(self) -> int:
        """The most positions one read may span: the learned positions (genkit.models.decoding
        slides a window past them)."""
        return self.block_size

    def flops_per_token(self) -> float:
        """Training FLOPs per token: 6N + 12 L T d (Kaplan et al. 2020; PaLM's appendix B), N the
        parameters without the position embeddings (a lookup), T the context block_size."""
        n = sum(p.numel() for p in self.parameters()) - self.wpe.weight.numel()
        return 6 * n + 12 * self.n_layer * self.block_size * self.n_embd

    def repeat_cache(self, cache: KVCache, times: int) -> KVCache:
        """Each row's keys and values repeated `times` times (rows n*times .. n*times + times - 1
        continue row n): one prompt read once, then scored with many candidate completions."""
        return cache.repeat(times)

    def carry(self, cache: KVCache | None, keep: torch.Tensor | None = None) -> None:
        """Nothing carries over to the next window: learned positions restart at 0 (data.streams
        only orders the windows for a transformer)."""
        return None

    def compile_units(self) -> list[nn.Module]:
        """The pieces that trainer.compile=true compiles in place: each block (one graph, reused by
        every block; training calls `hidden`, which calls the blocks, not `forward`)."""
        return list(self.blocks)
