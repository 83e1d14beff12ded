"""Scores of a prompt -> completion task (data=pairs) for `genkit eval` and validation.

- every task: exact match after whitespace normalisation (genkit.data.pairs.normalise);
- a closed label set: accuracy, and precision / recall / F1 / support per label with macro and
  weighted averages (torchmetrics), plus the confusion matrix. Labels are chosen from the model's
  score of each label (its log-likelihood given the prompt, or a classification head's), turned
  into a choice by a rule of genkit.metrics.label_scoring that validation picks (never an invalid
  label; the default), or by free generation (a generated text outside the set counts as wrong);
- free text: ROUGE-L F-measure (Lin 2004) and chrF (Popovic 2015), both torchmetrics'.
The completion-only loss and perplexity come from the family's test loop (the language model's test/loss).
"""

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torchmetrics.functional.classification import (
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)
from torchmetrics.functional.text import chrf_score
from torchmetrics.functional.text.rouge import rouge_score

from genkit.data.pairs import PairsDataModule
from genkit.data.records import normalise, read_rows, write_predictions
from genkit.errors import GenkitError
from genkit.metrics.label_scoring import AUTO, CONTENT_FREE, LabelEvidence, candidates, choose, rule_scores
from genkit.models.completion import complete
from genkit.models.label_task import label_log_prior

log = logging.getLogger("genkit")

LABEL_CHOICES = ("likelihood", "generate")


def _spaced(records: list[dict], max_records: int | None) -> list[dict]:
    # evenly spaced, not the first N: files are often sorted (WordNet's by part of speech, so its
    # first 100 validation records are all nouns)
    if max_records is None or len(records) <= max_records:
        return records
    return [records[i * len(records) // max_records] for i in range(max_records)]


def label_evidence(model, datamodule, records: list[dict]) -> LabelEvidence:
    """The model's score of every label for each record's prompt (model.label_logprobs), and for
    the content-free prompts and the bare template that the calibrating rules divide out."""
    model.eval()
    labels = [datamodule.encode_completion(label) for label in datamodule.labels]
    room = max(map(len, labels))  # the longest label must fit after the prompt
    prompts = [datamodule.fitted_prompt(r["prompt"], room) for r in records]
    content_free = model.label_logprobs([datamodule.fitted_prompt(text, room) for text in CONTENT_FREE], labels)
    counts = getattr(datamodule, "label_counts", None)  # checkpoints of genkit <= 0.x kept no counts
    log_prior = label_log_prior(counts) if counts else None
    # a label head scores a label as one outcome, not as tokens: its "per token" rule is its plain one
    per_head = getattr(model, "head", "tokens") == "labels"
    return LabelEvidence(
        scores=model.label_logprobs(prompts, labels),
        lengths=torch.ones(len(labels), dtype=torch.long) if per_head else torch.tensor([len(ids) for ids in labels]),
        content_free=content_free,
        template=content_free[CONTENT_FREE.index("")],
        log_prior=log_prior,
    )


def label_indices(labels: list[str], completions: list[str]) -> torch.Tensor:
    """Each completion's index in the label set (len(labels) for a text outside it)."""
    index = {label: k for k, label in enumerate(labels)}
    return torch.tensor([index.get(normalise(c), len(index)) for c in completions])


def choose_label_scoring(
    model, datamodule, *, wanted: str = AUTO, strength: float | None = None, max_records: int | None = None
) -> tuple[str, dict[str, float]]:
    """The label scoring rule with the best macro F1 on the validation records (max_records of
    them, evenly spaced), and each rule's macro F1 there."""
    records = _spaced(datamodule.task_records("val"), max_records)
    evidence = label_evidence(model, datamodule, records)
    true = label_indices(datamodule.labels, [r["completion"] for r in records])
    return choose(evidence, true, candidates(evidence, wanted, strength))


def generate_completions(model, datamodule, records: list[dict], options: Mapping[str, Any] | None = None) -> list[str]:
    """A completion generated for each record's prompt (greedy unless options set a temperature),
    up to end-of-text."""
    options = dict(options or {})
    model.eval()
    room = max(map(len, map(datamodule.encode_completion, datamodule.labels))) if datamodule.labels else 1
    prompts = [datamodule.fitted_prompt(r["prompt"], room) for r in records]
    generated = complete(
        model.net,
        prompts,
        datamodule.tokenizer.eot_id,
        max_new_tokens=options.get("max_new_tokens") or datamodule.longest_completion,
        temperature=options.get("temperature") or 0.0,
        top_k=options.get("top_k"),
        top_p=options.get("top_p"),
        generator=options.get("generator"),
        batch_size=datamodule.eval_batch_size,
    )
    return [datamodule.decode_completion(ids) for ids in generated]


def classification_report(predictions: list[str], references: list[str], labels: list[str]) -> dict[str, Any]:
    """Accuracy, per-label precision / recall / F1 / support, macro and weighted averages, and the
    confusion matrix (rows: true label, columns: predicted; a last column for invalid predictions).

    Macro averages run over the labels that occur in the references or the predictions, as
    scikit-learn's do, so a label absent from a small split does not count as an F1 of 0."""
    K = len(labels)
    pred, true = label_indices(labels, predictions), label_indices(labels, references)  # K: not a label
    args = {"num_classes": K + 1, "average": None, "ignore_index": None}
    precision, recall = multiclass_precision(pred, true, **args), multiclass_recall(pred, true, **args)
    f1 = multiclass_f1_score(pred, true, **args)
    support = torch.bincount(true, minlength=K + 1)
    present = (support > 0) | (torch.bincount(pred, minlength=K + 1) > 0)
    present[K] = False
    weights = support[:K].float() / max(int(support[:K].sum()), 1)
    per_label = {
        label: {"precision": precision[k].item(), "recall": recall[k].item(), "f1": f1[k].item(),
                "support": int(support[k])}
        for k, label in enumerate(labels)
        if present[k]
    }  # fmt: skip
    return {
        "accuracy": (pred == true).float().mean().item(),
        "macro_precision": precision[present].mean().item(),
        "macro_recall": recall[present].mean().item(),
        "macro_f1": f1[present].mean().item(),
        "weighted_precision": (precision[:K] * weights).sum().item(),
        "weighted_recall": (recall[:K] * weights).sum().item(),
        "weighted_f1": (f1[:K] * weights).sum().item(),
        "invalid": int((pred == K).sum()),
        "per_label": per_label,
        "confusion": multiclass_confusion_matrix(pred, true, num_classes=K + 1)[:K].tolist(),
    }


def text_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    """ROUGE-L F-measure and chrF (0-1) of generated completions against the references."""
    preds, refs = [normalise(p) for p in predictions], [normalise(r) for r in references]
    return {
        "rouge_l": rouge_score(preds, refs, rouge_keys="rougeL")["rougeL_fmeasure"].item(),
        "chrf": chrf_score(preds, [[r] for r in refs]).item(),
    }


def task_scores(
    model,
    datamodule,
    split: str,
    *,
    choose_labels: str = "likelihood",
    label_scoring: str = AUTO,
    prior_strength: float | None = None,
    max_records: int | None = None,
    options: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any] | None, list[str]]:
    """(scores named `<split>/<metric>`, the classification report or None, predictions).

    A label task chooses its labels by the rule `label_scoring`; `auto` picks the rule on these
    very records, which only validation may do (eval picks on val with choose_label_scoring, then
    scores test with the rule it found)."""
    records = _spaced(datamodule.task_records(split), max_records)
    references = [r["completion"] for r in records]
    scores: dict[str, Any] = {f"{split}/records": len(records)}
    if datamodule.labels and choose_labels == "likelihood":
        evidence = label_evidence(model, datamodule, records)
        names = candidates(evidence, label_scoring, prior_strength)
        if len(names) > 1:
            if split != "val":
                raise ValueError(f"the {split} split never chooses its own label scoring rule")
            label_scoring, by_rule = choose(evidence, label_indices(datamodule.labels, references), names)
            scores[f"{split}/macro_f1_by_label_scoring"] = by_rule
        else:
            label_scoring = names[0]
        best = rule_scores(evidence, label_scoring).argmax(dim=1)
        predictions = [datamodule.labels[k] for k in best.tolist()]
        scores[f"{split}/label_scoring"] = label_scoring
    else:
        predictions = generate_completions(model, datamodule, records, options)
    exact = sum(normalise(p) == normalise(r) for p, r in zip(predictions, references, strict=True))
    scores[f"{split}/exact_match"] = exact / max(len(records), 1)
    report = None
    if datamodule.labels:
        report = classification_report(predictions, references, datamodule.labels)
        scores.update({f"{split}/{k}": v for k, v in report.items() if isinstance(v, float)})
        scores[f"{split}/invalid_labels"] = report["invalid"]
    else:
        scores.update({f"{split}/{k}": v for k, v in text_scores(predictions, references).items()})
    return scores, report, predictions


def report_table(report: dict[str, Any]) -> str:
    """The classification report as a plain table, as scikit-learn prints it."""
    width = max([len(k) for k in report["per_label"]] + [12])
    lines = [f"{'label':>{width}}  precision  recall  f1-score  support"]
    for label, s in report["per_label"].items():
        lines.append(f"{label:>{width}}  {s['precision']:9.3f}  {s['recall']:6.3f}  {s['f1']:8.3f}  {s['support']:7d}")
    total = sum(s["support"] for s in report["per_label"].values())
    lines.append(f"{'accuracy':>{width}}  {'':9}  {'':6}  {report['accuracy']:8.3f}  {total:7d}")
    for avg in ("macro", "weighted"):
        lines.append(
            f"{avg + ' avg':>{width}}  {report[avg + '_precision']:9.3f}  {report[avg + '_recall']:6.3f}  "
            f"{report[avg + '_f1']:8.3f}  {total:7d}"
        )
    return "\n".join(lines)


def confusion_png(report: dict[str, Any], labels: list[str], path: Path) -> Path:
    """The confusion matrix (rows: true label, columns: predicted, last column: invalid) as a PNG,
    each row normalised by its support so rare labels are as visible as common ones."""
    import matplotlib

    matplotlib.use("Agg")  # no display: write the file only
    import matplotlib.pyplot as plt

    counts = torch.tensor(report["confusion"], dtype=torch.float)
    rates = counts / counts.sum(dim=1, keepdim=True).clamp(min=1)
    size = max(4.0, 0.22 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels) + 1), [*labels, "(invalid)"], rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(im, ax=ax, label="share of the true label's records")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def complete_file(model, datamodule, inputs: Path, out: str | None, options: Mapping[str, Any]) -> Path:
    """`genkit sample inputs=<file> out=<preds.jsonl>`: a completion for every prompt of the file
    (JSON Lines, CSV or Parquet, read as the run's data reads records), written beside its fields."""
    if not isinstance(datamodule, PairsDataModule):
        raise GenkitError(
            f"inputs={inputs} asks for completions of prompts, but this checkpoint was trained on {datamodule.name}, "
            f'not on prompt -> completion records (data=pairs); sample it with prompt="...".'
        )
    if not out:
        raise GenkitError(f"inputs={inputs} needs out=<preds.jsonl>: where to write the completions.")
    records = []
    for where, row in read_rows(inputs, datamodule.max_record_bytes):
        records.append({"prompt": datamodule.read(where, row, need_completion=False)[0], "row": row})
        # with data.long_prompts=cut the run keeps a long prompt's end (fitted_prompt), as in training
        if (
            datamodule.long_prompts != "cut"
            and len(datamodule.encode_prompt(records[-1]["prompt"])) >= datamodule.block_size
        ):
            raise GenkitError(
                f"{where}: its prompt does not fit the model's context of {datamodule.block_size} tokens with room "
                f"for a completion; shorten it, or train with data.long_prompts=cut to keep the ends of such prompts."
            )
    extra = None
    if datamodule.labels and getattr(model, "head", "tokens") == "labels":
        # a label head answers with a label and each label's probability (its plain argmax)
        probabilities = label_evidence(model, datamodule, records).scores.exp()
        predictions = [datamodule.labels[k] for k in probabilities.argmax(dim=1).tolist()]
        extra = [{"probabilities": dict(zip(datamodule.labels, map(float, row), strict=True))}
                 for row in probabilities.tolist()]  # fmt: skip
    else:
        predictions = generate_completions(model, datamodule, records, options)
    path = write_predictions(records, predictions, Path(out), extra)
    log.info("Wrote %d completions to %s", len(records), path)
    return path
