"""The one generation loop of the language-model family, for every network of it (genkit's
transformer, the LSTM, Hugging Face causal LMs, one of your own): `genkit sample` runs it on one
group of rows, `genkit serve` on many that join and leave between tokens (continuous batching).

A network gives the loop what LanguageModelNet (genkit/models/lm.py) promises: `hidden(idx,
cache)` with a cache that continues each row where it stopped, `lm_head`, and `context_length`
(None: no limit). Serving also regroups rows, through the cache's `select(rows)` and
`join(other)`; `genkit sample` never does. The loop is genkit's own rather than transformers'
`generate`, which drives only transformers' models and has no way to add or drop rows mid-run.

Each group (a request's n completions, or `genkit sample`'s n samples) is sampled with its own
settings and generator, one torch.multinomial over its rows per token, so what a group draws does
not depend on what else is in the batch (up to the last bits of batched matmuls).
"""

from dataclasses import dataclass, field

import torch

from genkit.models.sampling import sample_next


@dataclass
class Sampling:
    """How a group picks its tokens: temperature 0 is greedy; top_k and top_p truncate."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    generator: torch.Generator | None = None


@dataclass(eq=False)
class Group:
    """Rows that started from one prompt and grow alike: their tokens (prompt, then generated)."""

    sampling: Sampling
    tokens: list[list[int]]
    # the network's cache holds these rows; False once their context is full (or without a cache):
    # then their last context_length tokens are re-read for every further token
    cached: bool = True
    # with add(score_prompt=True): logits (n, T, vocab) at every prompt position
    prompt_logits: torch.Tensor | None = field(default=None, repr=False)

    @property
    def rows(self) -> int:
        return len(self.tokens)

    @property
    def length(self) -> int:
        return len(self.tokens[0])


class Decoding:
    """The rows being generated, with the next token's logits for each."""

    def __init__(self, net, use_cache: bool = True):
        self.net, self.use_cache = net, use_cache
        self.context: int | None = net.context_length
        self.groups: list[Group] = []  # in row order
        self.cache = None  # the rows of the cached groups, in row order
        self.logits: torch.Tensor | None = None  # (rows, vocab): the next token's
        self.last: torch.Tensor | None = None  # (rows, 1): what sample() drew, until advance() reads it

    @property
    def rows(self) -> int:
        return sum(g.rows for g in self.groups)

    @property
    def can_join(self) -> bool:
        """Whether rows can join the running ones (a cache of sliding-window layers cannot regroup)."""
        return self.cache is None or self.cache.joinable

    def _read(self, idx: torch.Tensor, cache=None) -> tuple[torch.Tensor, torch.Tensor, object]:
        h, cache = self.net.hidden(idx, cache)
        return h, self.net.lm_head(h[:, -1]), cache

    def _window(self, group: Group) -> torch.Tensor:
        tokens = [row[-self.context :] for row in group.tokens] if self.context else group.tokens
        return torch.tensor(tokens, dtype=torch.long, device=self.net.lm_head.weight.device)

    def add(self, prompts: torch.Tensor, sampling: Sampling, score_prompt: bool = False) -> Group:
        """Rows (n, T) of one prompt length join at the end; their prompt is read now."""
        group = Group(sampling, prompts.tolist())
        fits = self.use_cache and (self.context is None or group.length < self.context)
        group.cached = fits
        h, logits, cache = self._read(prompts if fits or score_prompt else self._window(group))
        if score_prompt:
            group.prompt_logits = self.net.lm_head(h)
        if fits:
            self.cache = cache if self.cache is None else self.cache.join(cache)
        self.groups.append(group)
        self.logits = logits if self.logits is None else torch.cat([self.logits, logits])
        return group

    def remove(self, group: Group) -> None:
        """A group's rows leave (their request is answered)."""
        at = self.groups.index(group)
        start = sum(g.rows for g in self.groups[:at])
        keep = torch.ones(self.rows, dtype=torch.bool)
        keep[start : start + group.rows] = False
        self.logits = self.logits[keep.to(self.logits.device)]
        if self.last is not None and len(self.last) == len(keep):  # drawn, not yet read: by all rows
            self.last = self.last[keep.to(self.last.device)]
        else:
            self.last = None
        if group.cached:
            self._drop_cached(group)
        self.groups.pop(at)

    def _drop_cached(self, group: Group) -> None:
        """Take a group's rows out of the cache (it left, or its context is full)."""
        kept, at = [], 0
        for g in (g for g in self.groups if g.cached):
            if g is not group:
                kept.extend(range(at, at + g.rows))
            at += g.rows
        if kept:
            self.cache = self.cache.select(torch.tensor(kept, device=self.logits.device))
        else:
            self.cache = None
        group.cached = False

    def sample(self) -> list[list[int]]:
        """Each group draws its rows' next tokens from the logits; returns them per group."""
        drawn, at = [], 0
        for g in self.groups:
            s = g.sampling
            drawn.append(sample_next(self.logits[at : at + g.rows], s.temperature, s.top_k, s.top_p, s.generator))
            at += g.rows
        self.last = torch.cat(drawn)  # (rows, 1)
        tokens = self.last[:, 0].tolist()
        out, at = [], 0
        for g in self.groups:
            new = tokens[at : at + g.rows]
            for row, token in zip(g.tokens, new, strict=True):
                row.append(token)
            out.append(new)
            at += g.rows
        return out

    def advance(self) -> None:
        """Read the tokens sample() drew: the next logits of every row."""
        for g in self.groups:  # a full cache: learned positions end here, the window slides
            if g.cached and self.context is not None and g.length > self.context:
                self._drop_cached(g)
        pieces, at, cached_rows = [], 0, []
        for g in self.groups:
            if g.cached:
                cached_rows.extend(range(at, at + g.rows))
            at += g.rows
        from_cache = None
        if cached_rows:
            last = self.last if len(cached_rows) == self.rows else self.last[cached_rows]
            _, from_cache, self.cache = self._read(last, self.cache)
        self.last = None  # read: rows that join now have drawn nothing yet
        taken = 0
        for g in self.groups:
            if g.cached:
                pieces.append(from_cache[taken : taken + g.rows])
                taken += g.rows
            else:
                pieces.append(self._read(self._window(g))[1])
        self.logits = pieces[0] if len(pieces) == 1 else torch.cat(pieces)


@torch.no_grad()
def generate(
    net,
    idx: torch.Tensor,
    max_new_tokens: int,
    sampling: Sampling | None = None,
    use_cache: bool = True,
) -> torch.Tensor:
    """idx (B, T) extended by max_new_tokens tokens (B, T + max_new_tokens). Without the cache
    every token re-reads the sequence (its last context_length tokens): the same numbers, slower."""
    if max_new_tokens == 0:
        return idx
    decoding = Decoding(net, use_cache)
    group = decoding.add(idx, sampling or Sampling())
    for step in range(max_new_tokens):
        decoding.sample()
        if step < max_new_tokens - 1:
            decoding.advance()
    return torch.tensor(group.tokens, dtype=torch.long, device=idx.device)
