"""Completing prompts with a language-model network (genkit.models.lm.LanguageModelNet): batched
generation that stops at end-of-text, and the log-likelihood of candidate completions (labels).

Prompts of unequal lengths are grouped by length, so every batch is a rectangle with no padding
and no attention mask: any network of the protocol (transformer, LSTM) completes them unchanged.
"""

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from genkit.models.decoding import Decoding, Sampling


def by_length(prompts: Sequence[Sequence[int]], batch_size: int):
    """Batches of indices of prompts of one length each."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    for _, group in itertools.groupby(order, key=lambda i: len(prompts[i])):
        group = list(group)
        for start in range(0, len(group), batch_size):
            yield group[start : start + batch_size]


@torch.no_grad()
def complete(
    net,
    prompts: Sequence[Sequence[int]],
    eot_id: int,
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    batch_size: int = 64,
) -> list[list[int]]:
    """The ids generated after each prompt, up to (not including) the first eot_id; temperature 0
    is greedy. Generation stops when every row of a batch has ended, or after max_new_tokens, or
    when the row reaches the network's block_size (the longest row it was trained on)."""
    device = next(net.parameters()).device
    out: list[list[int]] = [[] for _ in prompts]
    for rows in by_length(prompts, batch_size):
        idx = torch.tensor([list(prompts[i]) for i in rows], dtype=torch.long, device=device)  # (B, T)
        steps = min(max_new_tokens, net.block_size - idx.shape[1] + 1)
        decoding = Decoding(net)
        group = decoding.add(idx, Sampling(temperature, top_k, top_p, generator))
        done = [False] * len(rows)
        for step in range(steps):
            tokens = decoding.sample()[0]
            done = [d or t == eot_id for d, t in zip(done, tokens, strict=True)]
            if all(done) or step == steps - 1:
                break
            decoding.advance()
        generated = [row[idx.shape[1] :] for row in group.tokens]
        for i, ids in zip(rows, generated, strict=True):
            out[i] = ids[: ids.index(eot_id)] if eot_id in ids else ids
    return out


@torch.no_grad()
def candidate_logprobs(
    net, prompts: Sequence[Sequence[int]], candidates: Sequence[Sequence[int]], *, batch_rows: int = 2048
) -> torch.Tensor:
    """(len(prompts), len(candidates)) summed log-probabilities of each candidate's ids (a label
    and its closing eot) following each prompt: log p(c | prompt) = sum_t log p(c_t | prompt, c_<t).

    Each (prompt, candidate) is one row; prompts of one length go together so a batch is padded
    only to its longest candidate, and the output layer is applied only where a candidate's token
    is predicted."""
    device = next(net.parameters()).device
    K, longest = len(candidates), max(len(c) for c in candidates)
    cand = torch.zeros(K, longest, dtype=torch.long, device=device)
    cand_mask = torch.zeros(K, longest, dtype=torch.bool, device=device)
    for k, ids in enumerate(candidates):
        cand[k, : len(ids)] = torch.tensor(list(ids), dtype=torch.long)
        cand_mask[k, : len(ids)] = True
    scores = torch.zeros(len(prompts), K)
    for rows in by_length(prompts, max(1, batch_rows // K)):
        p = torch.tensor([list(prompts[i]) for i in rows], dtype=torch.long, device=device)  # (N, P)
        N = len(rows)
        # row n * K + k: prompt n followed by candidate k (its last id is only a target)
        h = _candidate_hidden(net, p, cand[:, :-1], K)  # the positions that predict candidate tokens: (N*K, L, C)
        mask = cand_mask.repeat(N, 1)  # (N*K, L)
        logp = F.log_softmax((h[mask] @ net.lm_head.weight.T).float(), dim=-1)  # (n_targets, V)
        picked = logp.gather(1, cand.repeat(N, 1)[mask][:, None])[:, 0]
        per_row = torch.zeros(N * K, device=device).index_add_(0, mask.nonzero()[:, 0], picked)
        scores[rows] = per_row.view(N, K).cpu()
    return scores


def _candidate_hidden(net, prompts: torch.Tensor, candidates: torch.Tensor, K: int) -> torch.Tensor:
    """(N*K, L, C) hidden states at the positions that predict candidate k's tokens after prompt n
    (row n*K + k): prompts (N, P), candidates (K, L - 1) without their last id (only a target).

    A network with `repeat_cache` reads each prompt once and the candidates from its cache (a
    45-label task: ~25 prompt positions plus 45 x 4 label positions a record, instead of
    45 x 29); any other network reads each prompt with each candidate in full (same numbers)."""
    N, P = prompts.shape
    if not hasattr(net, "repeat_cache"):
        x = torch.cat([prompts.repeat_interleave(K, 0), candidates.repeat(N, 1)], dim=1)  # (N*K, P + L - 1)
        return net.hidden(x)[0][:, P - 1 :]
    h_prompt, cache = net.hidden(prompts)
    first = h_prompt[:, -1:].repeat_interleave(K, 0)  # predicts every candidate's first token
    if candidates.shape[1] == 0:
        return first
    h, _ = net.hidden(candidates.repeat(N, 1), net.repeat_cache(cache, K))
    return torch.cat([first, h], dim=1)
