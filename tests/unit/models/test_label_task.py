"""A language model on a label task: label indices read from the targets, the balanced and
logit-adjusted losses, and LoRA's label rows (trained, the other rows untouched)."""

import torch
import torch.nn.functional as F

from genkit.loss_targets import IGNORE_INDEX
from genkit.models.label_task import (
    LabelTask,
    balanced_token_loss,
    head_loss,
    last_prompt_positions,
    train_label_rows,
)

I = IGNORE_INDEX  # noqa: E741


def _task() -> LabelTask:
    # label 0 is written [5, 1], label 1 [6, 1] (1: the closing end-of-text); label 0 is 9x as frequent
    return LabelTask([[5, 1], [6, 1]], counts=[89, 9])


def test_row_labels_and_last_prompt_positions_come_from_the_targets():
    y = torch.tensor([[I, I, 5, 1, I], [I, 6, 1, I, I], [I, I, 7, 1, I]])
    assert _task().row_labels(y).tolist() == [0, 1, -1]  # [7, 1]: not a label (-1)
    assert last_prompt_positions(y).tolist() == [2, 1, 2]


def test_the_class_weights_make_each_label_weigh_alike():
    task = _task()
    prior = task.log_prior.exp()
    assert torch.allclose(prior, torch.tensor([0.9, 0.1]))
    assert torch.allclose(prior * task.class_weights, torch.full((2,), 0.5))


def test_balanced_token_loss_weighs_a_rare_labels_rows_up():
    task = _task()
    torch.manual_seed(0)
    h, w = torch.randn(2, 3, 8), torch.randn(10, 8)
    y = torch.tensor([[I, 5, 1], [I, 6, 1]])  # a common label's row and a rare one's
    targets = y != I
    nll = F.cross_entropy((h[targets] @ w.T), y[targets], reduction="none")
    weights = task.class_weights.repeat_interleave(2)
    expected = (nll * weights).sum() / weights.sum()
    assert torch.allclose(balanced_token_loss(h, w, y, task), expected)
    assert not torch.allclose(expected, nll.mean())


def test_logit_adjusted_loss_adds_the_log_prior_and_balanced_weighs_labels():
    task = _task()
    logits, labels = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    assert torch.allclose(head_loss(logits, labels, task, "plain"), F.cross_entropy(logits, labels))
    assert torch.allclose(
        head_loss(logits, labels, task, "logit_adjusted"), F.cross_entropy(logits + task.log_prior, labels)
    )
    assert torch.allclose(
        head_loss(logits, labels, task, "balanced"), F.cross_entropy(logits, labels, weight=task.class_weights)
    )


def test_label_rows_train_and_every_other_row_stays_as_it_was():
    embedding = torch.nn.Embedding(10, 4)
    embedding.weight.requires_grad_(False)  # as LoRA leaves it
    before = embedding.weight.detach().clone()
    assert train_label_rows([embedding.weight, embedding.weight], [5, 6, 1]) == 3 * 4  # tied: counted once
    optimizer = torch.optim.AdamW([embedding.weight], lr=0.1, weight_decay=0.0)
    for _ in range(3):
        embedding(torch.tensor([[0, 5, 2, 6, 1]])).pow(2).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
    changed = (embedding.weight.detach() != before).any(dim=1)
    assert changed.nonzero()[:, 0].tolist() == [1, 5, 6]
