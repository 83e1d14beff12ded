"""Rules that turn a model's per-label scores into a choice of label (a label task, data=pairs).

Scoring each label by its log-likelihood given the prompt is biased toward labels the model finds
likely whatever the prompt: short ones, frequent ones, ones whose words it knows. Each rule
corrects one source of that bias, from the same scores and a few extra prompts (nothing trains):

- `sum`: the summed log-probability of the label's tokens and its closing end-of-text;
- `mean`: the same per token, so a label of several tokens is not penalised for its length;
- `calibrated`: contextual calibration (Zhao et al. 2021, "Calibrate Before Use"): the label
  distribution the model gives content-free prompts ("N/A", "", "[MASK]"), averaged, is divided
  out;
- `pmi`: domain-conditional PMI (Holtzman et al. 2021): log p(label | prompt) minus log p(label |
  the template alone), where the template is the separator with no text before it;
- `prior`: logit adjustment (Menon et al. 2021): the label's frequency in the training split,
  raised to a strength tau, is divided out of p(label | prompt); aimed at balanced metrics such as
  macro F1. Strengths 0.25 ... 1.5 are tried unless one is given.

`choose` scores the validation records with every rule and keeps the one with the best macro F1
(ties go to the simpler rule, in the order above), so a test split never picks its own rule.
"""

from dataclasses import dataclass

import torch
from torchmetrics.functional.classification import multiclass_f1_score

RULES = ("sum", "mean", "calibrated", "pmi", "prior")
AUTO = "auto"
# the content-free inputs of Zhao et al. (their Table 3 averages these three)
CONTENT_FREE = ("N/A", "", "[MASK]")
# the strengths of the label-prior correction that validation chooses from (tau = 1 is Bayes-
# optimal for a balanced error when the model's probabilities are calibrated; a trained model's
# rarely are, hence a range)
PRIOR_STRENGTHS = (0.25, 0.5, 0.75, 1.0, 1.5)


@dataclass
class LabelEvidence:
    """What every rule is computed from, for N records and K labels."""

    scores: torch.Tensor  # (N, K) summed log p(label k | prompt n)
    lengths: torch.Tensor  # (K,) tokens of each label's completion (its closing end-of-text included)
    content_free: torch.Tensor  # (C, K) summed log p(label | content-free prompt c)
    template: torch.Tensor  # (K,) summed log p(label | the template with no text)
    log_prior: torch.Tensor | None  # (K,) log frequency of each label in the training split; None: unknown


def rule_name(rule: str, strength: float | None = None) -> str:
    """`prior:0.5` for the prior rule at strength 0.5, else the rule's name."""
    return f"{rule}:{strength:g}" if rule == "prior" else rule


def parse_rule(name: str) -> tuple[str, float | None]:
    rule, _, strength = name.partition(":")
    return rule, float(strength) if strength else None


def rule_scores(evidence: LabelEvidence, name: str) -> torch.Tensor:
    """(N, K) scores whose argmax over labels is the rule's choice."""
    rule, strength = parse_rule(name)
    s = evidence.scores
    if rule == "sum":
        return s
    if rule == "mean":
        return s / evidence.lengths.to(s.dtype)
    if rule == "calibrated":
        # the content-free prompts' label distributions, averaged as probabilities (Zhao et al.)
        p_cf = evidence.content_free.log_softmax(dim=1).exp().mean(dim=0)
        return s.log_softmax(dim=1) - p_cf.log()
    if rule == "pmi":
        return s - evidence.template
    if rule == "prior":
        if evidence.log_prior is None:
            raise ValueError("the prior rule needs the training split's label counts")
        return s.log_softmax(dim=1) - (1.0 if strength is None else strength) * evidence.log_prior
    raise ValueError(f"unknown label scoring rule {name!r}")


def candidates(evidence: LabelEvidence, wanted: str = AUTO, strength: float | None = None) -> list[str]:
    """The rule names validation chooses among: every rule (auto) or the one asked for; the prior
    rule at the strength given, else at each of PRIOR_STRENGTHS; none of it without label counts."""
    rules = RULES if wanted == AUTO else (wanted,)
    names = []
    for rule in rules:
        if rule != "prior":
            names.append(rule)
        elif evidence.log_prior is not None:
            names += [rule_name(rule, s) for s in ((strength,) if strength is not None else PRIOR_STRENGTHS)]
    return names


def macro_f1(predicted: torch.Tensor, true: torch.Tensor, num_labels: int) -> float:
    """Macro F1 over the labels that occur in `true` or `predicted`, as the report's macro average
    (a reference outside the label set, index num_labels, counts as wrong)."""
    f1 = multiclass_f1_score(predicted, true, num_classes=num_labels + 1, average=None)
    counts = torch.bincount(true, minlength=num_labels + 1) + torch.bincount(predicted, minlength=num_labels + 1)
    present = counts[:num_labels] > 0
    return f1[:num_labels][present].mean().item() if present.any() else 0.0


def choose(evidence: LabelEvidence, true: torch.Tensor, names: list[str]) -> tuple[str, dict[str, float]]:
    """The rule of `names` with the best macro F1 on these (validation) records, and every rule's."""
    K = evidence.scores.shape[1]
    scores = {name: macro_f1(rule_scores(evidence, name).argmax(dim=1), true, K) for name in names}
    best = max(names, key=lambda name: (scores[name], -names.index(name)))
    return best, scores
