"""Label scoring rules: each one undoes the bias it is meant for on a toy model biased that way
(and the plain sum does not), and validation picks the rule that scores best there."""

import torch

from genkit.metrics.label_scoring import (
    PRIOR_STRENGTHS,
    LabelEvidence,
    candidates,
    choose,
    macro_f1,
    rule_scores,
)

N, K = 300, 5


def _signal(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, K) log-probabilities that rank each record's true label first, and the true labels."""
    g = torch.Generator().manual_seed(seed)
    true = torch.arange(N) % K
    signal = torch.rand(N, K, generator=g) * 0.5  # below the true label's margin of 1
    signal[torch.arange(N), true] += 1.0
    return signal.log_softmax(dim=1), true


def _evidence(scores, *, lengths=None, content_free=None, template=None, log_prior=None) -> LabelEvidence:
    return LabelEvidence(
        scores=scores,
        lengths=torch.ones(K, dtype=torch.long) if lengths is None else lengths,
        content_free=torch.zeros(3, K) if content_free is None else content_free,
        template=torch.zeros(K) if template is None else template,
        log_prior=log_prior,
    )


def _accuracy(evidence: LabelEvidence, name: str, true: torch.Tensor) -> float:
    return (rule_scores(evidence, name).argmax(dim=1) == true).float().mean().item()


def test_calibration_and_pmi_remove_a_bias_that_the_prompt_does_not_carry():
    signal, true = _signal()
    bias = torch.tensor([3.0, 0.0, -1.0, 0.5, -2.0])  # what the model says of every label, whatever the text
    evidence = _evidence(signal + bias, content_free=bias.repeat(3, 1) + 0.01 * torch.randn(3, K), template=bias)
    assert _accuracy(evidence, "sum", true) < 0.5  # label 0 wins almost everywhere
    assert _accuracy(evidence, "calibrated", true) == _accuracy(_evidence(signal), "sum", true) == 1.0
    assert _accuracy(evidence, "pmi", true) == 1.0


def test_mean_removes_the_penalty_of_long_labels():
    signal, true = _signal()
    lengths = torch.tensor([1, 4, 2, 6, 3])
    per_token = signal / 2 - 0.5  # every token costs; a long label sums more of them
    evidence = _evidence(per_token * lengths, lengths=lengths)
    assert _accuracy(evidence, "sum", true) < 0.5
    assert _accuracy(evidence, "mean", true) == 1.0


def test_prior_removes_the_training_frequency_at_its_strength():
    signal, true = _signal()
    log_prior = torch.tensor([0.6, 0.2, 0.1, 0.07, 0.03]).log()
    evidence = _evidence(signal + 2 * log_prior, log_prior=log_prior)  # a model that learnt the prior twice over
    assert _accuracy(evidence, "sum", true) < 0.6
    assert _accuracy(evidence, "prior:2", true) == 1.0
    assert _accuracy(evidence, "prior:1", true) < 1.0


def test_validation_chooses_the_best_rule_and_the_simpler_on_a_tie():
    signal, true = _signal()
    log_prior = torch.full((K,), 1 / K).log()
    unbiased = _evidence(signal, log_prior=log_prior)
    names = candidates(unbiased)
    assert names[:4] == ["sum", "mean", "calibrated", "pmi"]
    assert names[4:] == [f"prior:{s:g}" for s in PRIOR_STRENGTHS]
    best, by_rule = choose(unbiased, true, names)
    assert best == "sum" and by_rule["sum"] == 1.0  # every rule is perfect here: the first wins

    bias = torch.tensor([3.0, 0.0, -1.0, 0.5, -2.0])
    biased = _evidence(signal + bias, content_free=bias.repeat(3, 1), template=bias, log_prior=log_prior)
    best, by_rule = choose(biased, true, candidates(biased))
    assert best == "calibrated" and by_rule["calibrated"] > by_rule["sum"]


def test_without_label_counts_there_is_no_prior_rule_and_a_given_strength_is_the_only_one():
    signal, _ = _signal()
    assert all(not n.startswith("prior") for n in candidates(_evidence(signal)))
    assert candidates(_evidence(signal, log_prior=torch.zeros(K)), "prior", 0.5) == ["prior:0.5"]


def test_macro_f1_counts_a_reference_outside_the_label_set_as_wrong():
    true = torch.tensor([0, 1, 2, K])  # K: a validation label the training split never had
    assert macro_f1(torch.tensor([0, 1, 2, 0]), true, K) < 1.0
    assert macro_f1(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]), K) == 1.0
