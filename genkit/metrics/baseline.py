"""The floor a fine-tune must beat on a label task: `genkit eval baseline=tfidf data=pairs ...`.

TF-IDF of word 1-2 grams and character 2-5 grams (within word boundaries) into a logistic
regression (one against the rest per label, scikit-learn's SGDClassifier with the log loss),
fitted on the training split: what a user would fit in minutes instead of fine-tuning. Its
regularisation and whether labels are reweighted to weigh alike are chosen on the validation
split's macro F1, never on test, and the test split is scored by the same report as `genkit eval
ckpt=<run>` (genkit.metrics.text_tasks.classification_report). The records are read as text from
the data's own files, so any data=pairs label task works.

Trained by SGD rather than L-BFGS: on WordNet's 105,837 supersense records (318,876 features) an
L-BFGS fit of 100 iterations took ~390 s and SGD ~23 s on one 2-core CPU, at the same validation
scores (docs/text-tasks.md has the figures).
"""

import logging
import time
from typing import Any

from genkit.data.pairs import PairsDataModule
from genkit.data.records import normalise
from genkit.errors import GenkitError
from genkit.metrics.text_tasks import classification_report

log = logging.getLogger("genkit")

BASELINES = ("tfidf",)
# what validation chooses among: the L2 regularisation strength and the label weights
SETTINGS = tuple({"alpha": a, "class_weight": w} for a in (1e-5, 2e-6, 5e-7) for w in (None, "balanced"))


def _name(setting: dict) -> str:
    return f"alpha={setting['alpha']:g},class_weight={setting['class_weight'] or 'none'}"


def baseline_scores(baseline: str, datamodule) -> tuple[dict[str, Any], dict[str, Any]]:
    """(scores named like eval's, the test classification report) of the baseline on this data."""
    if not isinstance(datamodule, PairsDataModule):
        raise GenkitError(
            f"baseline={baseline} scores a label task of prompt -> completion records, and data={datamodule.name} "
            f"is not one; pass data=pairs data.path=<your records> (with data.prompt_key / data.completion_key "
            f"naming the text and label fields)."
        )
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import SGDClassifier
    from sklearn.pipeline import make_union

    t0 = time.perf_counter()
    splits = datamodule.text_records()
    if not datamodule.labels:
        raise GenkitError(
            f"baseline={baseline} scores a label task, and the completions of {datamodule.name}'s training split are "
            f"free text (more than data.max_labels={datamodule.max_labels} distinct ones, or fewer than five records "
            f"per label); name the label field with data.completion_key, or list the labels in data.labels=[...]."
        )
    labels = datamodule.labels
    index = {label: k for k, label in enumerate(labels)}
    test = splits.get("test") or splits["val"]
    features = make_union(
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, min_df=2, dtype=np.float32),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2, dtype=np.float32),
    )
    x_train = features.fit_transform([r["prompt"] for r in splits["train"]])
    y_train = [index[normalise(r["completion"])] for r in splits["train"]]
    x_val, x_test = (features.transform([r["prompt"] for r in s]) for s in (splits["val"], test))
    log.info("baseline=%s: %d training records, %d features, %d labels", baseline, x_train.shape[0],
             x_train.shape[1], len(labels))  # fmt: skip
    by_setting, fitted = {}, {}
    for setting in SETTINGS:
        classifier = SGDClassifier(loss="log_loss", n_jobs=-1, random_state=0, **setting).fit(x_train, y_train)
        predicted = [labels[k] for k in classifier.predict(x_val)]
        by_setting[_name(setting)] = classification_report(predicted, [r["completion"] for r in splits["val"]],
                                                           labels)["macro_f1"]  # fmt: skip
        fitted[_name(setting)] = classifier
        log.info("baseline=%s %s: validation macro F1 %.3f", baseline, _name(setting), by_setting[_name(setting)])
    best = max(by_setting, key=lambda name: (by_setting[name], -list(by_setting).index(name)))
    predicted = [labels[k] for k in fitted[best].predict(x_test)]
    report = classification_report(predicted, [r["completion"] for r in test], labels)
    scores = {
        "baseline": baseline,
        "baseline_setting": best,
        "val/macro_f1_by_setting": by_setting,
        "test/records": len(test),
        "test/exact_match": report["accuracy"],
        **{f"test/{k}": v for k, v in report.items() if isinstance(v, float)},
        "test/invalid_labels": report["invalid"],
        "fit_seconds": round(time.perf_counter() - t0, 1),
    }
    return scores, report
