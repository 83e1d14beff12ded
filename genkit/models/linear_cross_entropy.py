"""Cross-entropy of a linear output layer, computed in chunks of rows without ever holding
the full (tokens x vocab) logits.

For a 10k-word vocabulary the logits of one batch take ~80 MB; on CPUs glibc serves blocks
that large with fresh mmaps, so every step paid ~80k page faults (a third of the step time,
measured on PTB). Chunks of a few MB are reused from the heap instead, and the peak memory
drops from O(tokens x vocab) to O(chunk x vocab). The gradients are computed chunk by chunk in
the forward pass (the loss is a scalar, so backward only scales them).
"""

from contextlib import nullcontext

import torch

_SMALLEST_NORMAL = torch.finfo(torch.float32).tiny


def _chunk_rows(vocab: int, device: torch.device) -> int:
    # CPU: ~8 MB of fp32 logits per chunk stays on the heap; GPU: large chunks, few launches
    budget = 8 << 20 if device.type == "cpu" else 1 << 30
    return max(1, budget // (4 * vocab))


def _nll_from_probs(probs: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """-log probs[y], from the softmax the gradient needs anyway: on CPUs a logsumexp over the
    rows costs ~2.5x a softmax (~15% of a PTB step). Exact where probs[y] is a normal float; the
    rows where it underflows get logsumexp(logits) - logits[y]."""
    p_y = probs.gather(1, y)[:, 0]
    nll = -p_y.log()
    tiny = p_y < _SMALLEST_NORMAL
    if tiny.any():
        lost = logits[tiny]
        nll[tiny] = torch.logsumexp(lost, dim=-1) - lost.gather(1, y[tiny])[:, 0]
    return nll


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, ignore_index: int, rows: int):
        need_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        w = weight.to(h.dtype)
        count = (targets != ignore_index).sum().clamp(min=1)
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        grad_h = torch.empty_like(h) if need_grad else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=h.device) if need_grad else None
        if not need_grad:
            # scores (validation, test) take the output layer in fp32 even under bf16 autocast:
            # a bf16 logit near 10 is off by up to 0.03, and the reported perplexity is exact
            h, w = h.float(), weight.float()
        for start in range(0, h.shape[0], rows):
            h_c, y_c = h[start : start + rows], targets[start : start + rows]
            valid = y_c != ignore_index
            y_safe = y_c.clamp(min=0)[:, None]
            with nullcontext() if need_grad else torch.autocast(h.device.type, enabled=False):
                logits = (h_c @ w.t()).float()  # (rows, vocab)
            if not need_grad:
                nll = -logits.log_softmax(dim=-1).gather(1, y_safe)[:, 0]
                total += (nll * valid).sum()
                continue
            g = logits.softmax(dim=-1)
            if h.is_cuda:  # no wait for the device (below); logsumexp is cheap on a GPU
                nll = torch.logsumexp(logits, dim=-1) - logits.gather(1, y_safe)[:, 0]
            else:
                nll = _nll_from_probs(g, logits, y_safe)
            total += (nll * valid).sum()
            # d(mean nll)/d(logits) = (softmax - onehot(y)) / count, zero on ignored rows
            g.scatter_add_(1, y_safe, torch.full(y_safe.shape, -1.0, device=g.device))
            g.mul_((valid.float() / count)[:, None])
            g = g.to(h.dtype)
            grad_h[start : start + rows] = g @ w
            grad_w += (g.t() @ h_c).float()
        ctx.save_for_backward(grad_h, grad_w.to(weight.dtype) if need_grad else None)
        return total / count

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        grad_h, grad_w = ctx.saved_tensors
        return grad_h * grad_output, grad_w * grad_output, None, None, None


def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100):
    """Mean cross-entropy of logits h @ weight.T against targets, skipping ignore_index targets.

    h (N, d), weight (vocab, d), targets (N,); equal to F.cross_entropy(h @ weight.T, targets).
    """
    return _LinearCrossEntropy.apply(h, weight, targets, ignore_index, _chunk_rows(weight.shape[0], h.device))
