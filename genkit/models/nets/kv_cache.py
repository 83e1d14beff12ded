"""The keys and values a transformer has read, for a batch of rows that may have read different
numbers of tokens (requests that joined a running batch at different times).

Rows are right-aligned: row b's `lengths[b]` positions are the last `lengths[b]` of the filled
columns, and the columns before them are padding that attention masks out. New positions are
written into every row at once, into buffers with room to spare, so a decoding step writes one
column instead of copying the whole cache (torch.cat of every layer's keys and values was the
largest single cost of a 16-row step: scripts/generation_speed.py); rows of one length have no
padding and need no mask. genkit's own layout (not transformers' Cache classes): genkit's
transformer reads it in its attention, and `select`/`join` are what continuous batching needs
(genkit.models.decoding).

A cache is extended in place: after a read, use the cache the read returned, never the one
handed to it.
"""

import torch
import torch.nn.functional as F

# columns added when a buffer is full: a growth every 64 tokens, not every token
GROWTH = 64


class KVCache:
    joinable = True  # rows of other requests can join (genkit.models.decoding)

    def __init__(self, layers: list[tuple[torch.Tensor, torch.Tensor]], lengths: torch.Tensor, shortest: int,
                 width: int | None = None):  # fmt: skip
        """layers: per layer (keys, values) buffers, each (B, n_head, capacity, head_dim), of which
        the first `width` columns are filled (all of them when None); width is the longest row's
        length; lengths (B,); shortest: min(lengths), kept as a number so that no step waits on
        the device to learn whether there is padding."""
        self.layers, self.lengths, self.shortest = layers, lengths, shortest
        self.width = layers[0][0].shape[2] if width is None else width
        self.padded = shortest < self.width

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.layers[layer]
        return k[:, :, : self.width], v[:, :, : self.width]

    def positions(self, new: int) -> torch.Tensor:
        """(B, new) position of each row's next `new` tokens."""
        return self.lengths[:, None] + torch.arange(new, device=self.lengths.device)

    def attention_mask(self, new: int) -> torch.Tensor | None:
        """Which keys (cached, then `new` appended) each of the `new` positions sees: (B, 1, new,
        width + new) booleans, or (new, width + new) without padding, or None when every key is seen."""
        width, device = self.width, self.lengths.device
        causal = None if new == 1 else torch.ones(new, width + new, dtype=torch.bool, device=device).tril(width)
        if not self.padded:
            return causal
        columns = torch.arange(width + new, device=device)
        seen = columns[None, :] >= (width - self.lengths)[:, None]  # (B, width + new): not padding
        mask = seen[:, None, None, :]
        return mask if causal is None else mask & causal

    def reserve(self, new: int) -> None:
        """Room for `new` more columns in every layer's buffers."""
        capacity = self.layers[0][0].shape[2]
        if self.width + new <= capacity:
            return
        extra = max(new, GROWTH)
        self.layers = [(F.pad(k[:, :, : self.width], (0, 0, 0, capacity - self.width + extra)),
                        F.pad(v[:, :, : self.width], (0, 0, 0, capacity - self.width + extra)))
                       for k, v in self.layers]  # fmt: skip

    def store(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write a layer's new keys and values (B, n_head, new, head_dim) after the filled columns
        (reserve first); returns the layer's keys and values up to them."""
        end = self.width + k.shape[2]
        keys, values = self.layers[layer]
        keys[:, :, self.width : end] = k
        values[:, :, self.width : end] = v
        return keys[:, :, :end], values[:, :, :end]

    def extended(self, new: int) -> "KVCache":
        """This cache with `new` more columns filled (by `store`)."""
        return KVCache(self.layers, self.lengths + new, self.shortest + new, self.width + new)

    def select(self, rows: torch.Tensor) -> "KVCache":
        """The cache of these rows (indices), without the padding columns no row needs any more."""
        lengths = self.lengths[rows]
        longest, shortest = (int(x) for x in lengths.aminmax()[::-1])
        cut = self.width - longest
        layers = [(k[rows, :, cut : self.width], v[rows, :, cut : self.width]) for k, v in self.layers]
        return KVCache(layers, lengths, shortest)

    def join(self, other: "KVCache") -> "KVCache":
        """These rows, then other's, left-padded to one width."""
        width = max(self.width, other.width)
        layers = [
            (torch.cat([left_pad(k, width), left_pad(k2, width)]), torch.cat([left_pad(v, width), left_pad(v2, width)]))
            for (k, v), (k2, v2) in zip(self, other, strict=True)
        ]
        return KVCache(layers, torch.cat([self.lengths, other.lengths]), min(self.shortest, other.shortest))

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def repeat(self, times: int) -> "KVCache":
        """Each row repeated `times` times (rows n*times .. n*times + times - 1 continue row n)."""
        layers = [(k.repeat_interleave(times, 0), v.repeat_interleave(times, 0)) for k, v in self]
        return KVCache(layers, self.lengths.repeat_interleave(times, 0), self.shortest)


def left_pad(t: torch.Tensor, width: int) -> torch.Tensor:
    """(B, n_head, w, head_dim) -> (B, n_head, width, head_dim), zeros on the left."""
    return t if t.shape[2] == width else F.pad(t, (0, 0, width - t.shape[2], 0))
