"""What a language model does differently on a label task (data=pairs whose completions form a
closed label set): a classification head, losses for imbalanced labels, and, under LoRA, the
embedding and output rows the label words need.

- `model.head=labels`: the hidden state of the prompt's last token (the position that would
  predict the completion's first token) goes through a linear layer over the labels, trained
  with cross-entropy on the label's index; the network's language-model output is left unused.
  Any network of the family works, since it only needs `net.hidden` (transformer, LSTM, Hugging
  Face causal LMs; transformers' `*ForSequenceClassification` does the same with its `score`
  layer, which is why the layer has no bias).
- `model.label_loss=balanced`: each record's loss weighted by 1 / (K x its label's training
  frequency), so every label weighs alike (for the token head and the label head);
  `logit_adjusted` (label head only): the training logits get + log prior (Menon et al. 2021,
  "Long-tail learning via logit adjustment"), so the head learns scores with the prior left out.
- LoRA with the token head: peft leaves the embedding and the output layer frozen, and the label
  words (`noun.animal`) may be words the pre-training never saw; the rows of the tokens the labels
  are written with train in full, the others stay as they were.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from genkit.loss_targets import IGNORE_INDEX
from genkit.models.completion import by_length

HEADS = ("tokens", "labels")
LABEL_LOSSES = ("plain", "balanced", "logit_adjusted")


def label_log_prior(counts: Sequence[int]) -> torch.Tensor:
    """(K,) log of each label's share of the training split, add-one smoothed: a label that training
    never shows (named in data.labels) still has a finite prior."""
    freq = torch.tensor(counts, dtype=torch.float) + 1
    return (freq / freq.sum()).log()


class LabelTask:
    """The label set as the loss sees it: which completion ids are which label, how often each
    label occurs in training."""

    def __init__(self, label_ids: Sequence[Sequence[int]], counts: Sequence[int] | None):
        self.num_labels = len(label_ids)
        self.index = {tuple(ids): k for k, ids in enumerate(label_ids)}
        self.token_ids = sorted({t for ids in label_ids for t in ids})
        self.log_prior = label_log_prior(counts if counts else [1] * self.num_labels)
        self.class_weights = 1.0 / (self.num_labels * self.log_prior.exp())  # a balanced split would weigh 1 each

    def row_labels(self, y: torch.Tensor) -> torch.Tensor:
        """(B,) the label index of each row's completion targets (-1: a completion outside the set,
        e.g. cut by data.block_size)."""
        rows = y.tolist()
        return torch.tensor(
            [self.index.get(tuple(t for t in row if t != IGNORE_INDEX), -1) for row in rows], device=y.device
        )


def last_prompt_positions(y: torch.Tensor) -> torch.Tensor:
    """(B,) the position of each row's last prompt token: the first one with a target."""
    return (y != IGNORE_INDEX).int().argmax(dim=1)


def head_loss(logits: torch.Tensor, labels: torch.Tensor, task: LabelTask, label_loss: str) -> torch.Tensor:
    """Cross-entropy of the label head's logits (B, K), plain, balanced or logit-adjusted."""
    logits = logits.float()
    weight = None
    if label_loss == "logit_adjusted":
        logits = logits + task.log_prior.to(logits.device)
    elif label_loss == "balanced":
        weight = task.class_weights.to(logits.device)
    return F.cross_entropy(logits, labels, weight=weight, ignore_index=-1)


def balanced_token_loss(h: torch.Tensor, lm_weight: torch.Tensor, y: torch.Tensor, task: LabelTask) -> torch.Tensor:
    """The completion tokens' cross-entropy, each row weighted by its label's class weight (rows
    outside the set: 1). Only completion positions reach the output layer (a few per row)."""
    targets = y != IGNORE_INDEX
    labels = task.row_labels(y)
    weights = torch.where(labels >= 0, task.class_weights.to(h.device)[labels.clamp(min=0)], 1.0)
    logits = (h[targets] @ lm_weight.to(h.dtype).T).float()
    nll = F.cross_entropy(logits, y[targets], reduction="none")
    w = weights[targets.nonzero()[:, 0]]
    return (nll * w).sum() / w.sum().clamp(min=1e-8)


def train_label_rows(embeddings: Sequence[nn.Parameter], token_ids: Sequence[int]) -> int:
    """Make these (frozen) embedding / output matrices trainable in the rows of token_ids only: the
    other rows' gradients are zeroed (and the optimizer gives these no weight decay, see
    LanguageModel.configure_optimizers, so they stay exactly as they were). Returns the parameters trained."""
    trained = 0
    for weight in {id(w): w for w in embeddings}.values():  # tied weights: once
        mask = torch.zeros(weight.shape[0], 1, dtype=weight.dtype, device=weight.device)
        mask[list(token_ids)] = 1
        weight.requires_grad_(True)
        weight.register_hook(lambda grad, mask=mask: grad * mask.to(grad.dtype))
        weight._genkit_rows_only = True  # read by configure_optimizers: no weight decay
        trained += len(token_ids) * weight.shape[1]
    return trained


@torch.no_grad()
def head_logprobs(net, head: nn.Linear, prompts: Sequence[Sequence[int]], batch_size: int = 256) -> torch.Tensor:
    """(len(prompts), K) log-probabilities of the labels from the head, on each prompt's last token;
    prompts of one length go together (no padding)."""
    device = head.weight.device
    out = torch.zeros(len(prompts), head.out_features)
    for rows in by_length(prompts, batch_size):
        idx = torch.tensor([list(prompts[i]) for i in rows], dtype=torch.long, device=device)
        h, _ = net.hidden(idx)
        out[rows] = head(h[:, -1]).float().log_softmax(dim=-1).cpu()
    return out
