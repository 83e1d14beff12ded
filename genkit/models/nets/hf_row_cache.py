"""transformers' KV cache (DynamicCache) for a batch of rows that may have read different numbers
of tokens, in the layout of genkit.models.nets.kv_cache: rows right-aligned, the columns before a
shorter row's tokens padding, which the attention mask hides (transformers' models take a 2-D
mask of padding and per-row position ids, as its own generate does with left padding).
"""

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

from genkit.models.nets.kv_cache import left_pad


class HFRowCache:
    """transformers' DynamicCache grows in place: after a read, use the cache the read returned,
    never the one handed to it (its width and lengths no longer hold)."""

    def __init__(self, cache: DynamicCache, lengths: torch.Tensor, shortest: int):
        self.cache, self.lengths, self.shortest = cache, lengths, shortest
        self.width = cache.get_seq_length()
        self.padded = shortest < self.width
        # rows of other requests can join only a cache of full-attention layers (a sliding-window
        # layer drops old columns on its own schedule, which the padding layout cannot follow)
        self.joinable = all(type(layer) is DynamicLayer for layer in cache.layers)

    def inputs(self, new: int) -> dict:
        """What the model needs beside the token ids to read `new` positions after these."""
        device = self.lengths.device
        extra = {"position_ids": self.lengths[:, None] + torch.arange(new, device=device)}
        if self.padded:
            columns = torch.arange(self.width + new, device=device)
            extra["attention_mask"] = (columns[None, :] >= (self.width - self.lengths)[:, None]).long()
        return extra

    def extended(self, cache: DynamicCache, new: int) -> "HFRowCache":
        return HFRowCache(cache, self.lengths + new, self.shortest + new)

    def _tensors(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if not self.joinable:
            raise ValueError("this model's cache has sliding-window layers: its rows cannot be regrouped")
        return [(layer.keys, layer.values) for layer in self.cache.layers]

    def select(self, rows: torch.Tensor) -> "HFRowCache":
        lengths = self.lengths[rows]
        longest, shortest = (int(x) for x in lengths.aminmax()[::-1])
        cut = self.width - longest
        layers = [(k[rows, :, cut:], v[rows, :, cut:]) for k, v in self._tensors()]
        return HFRowCache(DynamicCache(ddp_cache_data=layers), lengths, shortest)

    def join(self, other: "HFRowCache") -> "HFRowCache":
        width = max(self.width, other.width)
        layers = [
            (torch.cat([left_pad(k, width), left_pad(k2, width)]), torch.cat([left_pad(v, width), left_pad(v2, width)]))
            for (k, v), (k2, v2) in zip(self._tensors(), other._tensors(), strict=True)
        ]
        lengths = torch.cat([self.lengths, other.lengths])
        return HFRowCache(DynamicCache(ddp_cache_data=layers), lengths, min(self.shortest, other.shortest))
